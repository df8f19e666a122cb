#!/usr/bin/env python3
"""Kargo's Promotion webhook against promote's, on the same review (issue 17, item 5).

Both servers run on this machine against the same real kube-apiserver (scripts/kube) holding
Kargo's own CRDs and one Stage; they are started by hand as bench/README.md ("Kargo side by side")
says, because Kargo's webhook server is built from a Kargo v1.11 checkout (the Go module proxy
does not serve github.com/akuity/kargo/api, which it needs). This script only measures: rounds
alternate between the two (this machine is shared and noisy), each a closed loop of loadgen
(webhook/examples/loadgen.rs) for --seconds, and the RSS of each server is read before and after.

usage: bench/kargo_webhook.py --kargo PORT:PID --promote PORT:PID --ca FILE --body FILE
       [--host NAME] [--seconds 10] [--connections 16] [--rounds 3]
"""
import argparse
import json
import os
import subprocess

REL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release")
PATH = "/validate-kargo-akuity-io-v1alpha1-promotion"


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kargo", required=True)
    ap.add_argument("--promote", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--body", required=True)
    ap.add_argument("--host", default="kargo-webhooks-server.kargo.svc")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    servers = {}
    for name, spec in (("kargo", a.kargo), ("promote", a.promote)):
        port, pid = spec.split(":")
        servers[name] = (int(port), int(pid), rss_mb(int(pid)))
    results = {name: [] for name in servers}
    for r in range(a.rounds):
        for name, (port, pid, _) in servers.items():
            out = subprocess.run(
                [os.path.join(REL, "examples", "loadgen"), "--url", f"https://{a.host}:{port}{PATH}",
                 "--resolve", f"{a.host}=127.0.0.1:{port}", "--ca", a.ca, "--body", a.body,
                 "--connections", str(a.connections), "--seconds", str(a.seconds)],
                capture_output=True, text=True, check=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            res["round"] = r + 1
            results[name].append(res)
            print(json.dumps({"server": name, **res}), flush=True)
    for name, (port, pid, before) in servers.items():
        runs = results[name]
        print(json.dumps({
            "server": name,
            "rps_median": sorted(x["rps"] for x in runs)[len(runs) // 2],
            "p99_ms_median": sorted(x["p99_ms"] for x in runs)[len(runs) // 2],
            "errors": sum(x["errors"] for x in runs),
            "rss_mb_before": round(before, 1),
            "rss_mb_after": round(rss_mb(pid), 1),
        }))


if __name__ == "__main__":
    main()
