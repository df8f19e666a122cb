#!/usr/bin/env python3
"""Soak and abuse: promote-webhook under a steady mixed load for minutes, while its certificate
rotates, while one of two replicas is stopped, and while clients misbehave at the HTTP level.

Setup as bench/webhook.py (promote-sandbox as the API server, a project, a Stage, a running
Promotion, alice allowed to promote). The load is webhook/examples/loadgen.rs, open loop, over
TLS with keep-alive, taking four reviews in turn: a promotion's Application write (a lookup and
the full decision), Argo CD's status write (settled without a lookup), a Promotion CREATE
through the mutating hook and a Stage status write by a promoter (refused: a denial is a
well-formed answer too). A failed review is any request that gets no HTTP 200 AdmissionReview
answer in time.

Phases (each prints one Markdown row):
  steady     --seconds (default 600) at --rate (default 1000) reviews/s against one replica:
             failed reviews, p50/p99/max, the replica's RSS at the start and the end
  rotation   --phase-seconds (default 120) through a local round-robin in front of two
             replicas; every 20 s both replicas' certificate is replaced by a new one from the
             same CA (the webhooks reload it: --reload-interval 1s); at half time one replica
             gets SIGTERM and is started again once it has exited. The round-robin sends new
             connections only to replicas whose /readyz answers 200, as a Service's endpoints do
  abuse      --abuse-seconds (default 60) at 200 reviews/s while, at the same time: 300 slowloris
             connections (a header byte per second), 100 slow bodies (Content-Length 1 MB, a
             byte per second), 50 Content-Length lies (1 MB declared, 10 bytes sent, then
             silence), 16 clients sending 3 MB bodies as fast as they can (the body budget), and
             1,000 TCP connections that never start TLS

usage: bench/soak.py [--rate 1000] [--seconds 600] [--phase-seconds 120] [--abuse-seconds 60]
                     [--phases steady,rotation,abuse]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import webhook as wb  # noqa: E402  (the setup and helpers of bench/webhook.py)

HOST = wb.HOST
PATHS = {
    "promotion": "/validate-argoproj-io-v1alpha1-application",
    "status": "/validate-argoproj-io-v1alpha1-application",
    "create": "/mutate-kargo-akuity-io-v1alpha1-promotion",
    "stage-status": "/validate-kargo-akuity-io-v1alpha1-stage",
}


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d):
    os.makedirs(d, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "2", "-subj", "/CN=soak-ca", cwd=d)


def make_leaf(ca_dir, out_dir, n):
    """A serving certificate signed by the CA, written as the kubelet updates a Secret volume:
    files in a new directory, then one rename of the `..data` link."""
    os.makedirs(out_dir, exist_ok=True)
    gen = os.path.join(out_dir, f"..gen-{n}")
    os.makedirs(gen)
    ext = os.path.join(gen, "ext.cnf")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=DNS:{HOST}\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", os.path.join(gen, "tls.key"),
            "-out", os.path.join(gen, "tls.csr"), "-subj", f"/CN={HOST}", cwd=ca_dir)
    openssl("x509", "-req", "-in", os.path.join(gen, "tls.csr"), "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-out", os.path.join(gen, "tls.crt"), "-extfile", ext, cwd=ca_dir)
    tmp_link = os.path.join(out_dir, "..data_tmp")
    if os.path.lexists(tmp_link):
        os.remove(tmp_link)
    os.symlink(os.path.basename(gen), tmp_link)
    os.replace(tmp_link, os.path.join(out_dir, "..data"))
    for name in ["tls.crt", "tls.key"]:
        link = os.path.join(out_dir, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..data", name), link)


def start_replica(certs, kubeconfig, extra=()):
    port, mport = wb.free_port(), wb.free_port()
    args = [os.path.join(wb.REL, "promote-webhook"), "serve", "--cert", f"{certs}/tls.crt", "--key", f"{certs}/tls.key",
            "--kubeconfig", kubeconfig, "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{mport}",
            "--reload-interval", "1s", "--shutdown-delay", "2s", *extra]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if ready(mport):
            return {"proc": p, "port": port, "mport": mport}
        time.sleep(0.05)
    sys.exit("webhook did not start")


def ready(mport):
    try:
        import urllib.request
        return urllib.request.urlopen(f"http://127.0.0.1:{mport}/readyz", timeout=0.5).status == 200
    except Exception:
        return False


def rss_now_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RoundRobin:
    """A TCP round-robin on 127.0.0.1 over the replicas that answer /readyz (checked every
    100 ms), as a Service's endpoints: new connections go to ready replicas only; a connection
    lives as long as both its ends."""

    def __init__(self, replicas):
        self.replicas = replicas
        self.ready = list(replicas)
        self.next = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self.watch, daemon=True).start()
        threading.Thread(target=self.accept, daemon=True).start()

    def watch(self):
        while not self.stop:
            up = [r for r in self.replicas if r["proc"].poll() is None and ready(r["mport"])]
            with self.lock:
                self.ready = up
            time.sleep(0.1)

    def accept(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if not self.ready:
                    c.close()
                    continue
                r = self.ready[self.next % len(self.ready)]
                self.next += 1
            try:
                s = socket.create_connection(("127.0.0.1", r["port"]))
            except OSError:
                c.close()
                continue
            for a, b in [(c, s), (s, c)]:
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()


def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for x in (a, b):
        try:
            x.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def loadgen(port, ca, bodies, rate, seconds, conns=32):
    names = list(bodies)
    urls = ",".join(f"https://{HOST}:{port}{PATHS[n]}?timeout=10s" for n in names)
    return subprocess.Popen([os.path.join(wb.REL, "examples", "loadgen"), "--url", urls, "--resolve", f"{HOST}=127.0.0.1:{port}",
                             "--ca", ca, "--body", ",".join(bodies[n] for n in names), "--connections", str(conns),
                             "--seconds", str(seconds), "--rate", str(rate)], stdout=subprocess.PIPE, text=True)


def result(p):
    """loadgen's figures; a load generator that gave up (its warm-up request failed) counts as
    one failed review with no figures."""
    out, _ = p.communicate()
    try:
        return json.loads(out)
    except ValueError:
        return {"requests": 0, "errors": 1, "rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}


def mixed_bodies(tmp):
    base = wb.bodies(tmp)
    out = {"promotion": base["promotion"][0], "status": base["status"][0]}
    promo = {"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
             "metadata": {"generateName": "test.", "namespace": "kargo-demo"},
             "spec": {"stage": "test", "freight": "be79d3d863f2323dd406cff7a99de434892f8740"}}
    stage = {"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
             "metadata": {"name": "test", "namespace": "kargo-demo"},
             "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "guestbook"}, "sources": {"direct": True}}]}}
    forged = json.loads(json.dumps(stage))
    forged["status"] = {"freightSummary": "forged", "lastPromotion": {"name": "nope"}}
    for name, req in {
        "create": {"uid": "c", "kind": {"group": "kargo.akuity.io", "version": "v1alpha1", "kind": "Promotion"},
                   "operation": "CREATE", "namespace": "kargo-demo", "userInfo": {"username": "alice"}, "object": promo},
        "stage-status": {"uid": "s", "kind": {"group": "kargo.akuity.io", "version": "v1alpha1", "kind": "Stage"},
                         "subResource": "status", "name": "test", "operation": "UPDATE", "namespace": "kargo-demo",
                         "userInfo": {"username": "alice"}, "object": forged, "oldObject": stage},
    }.items():
        p = os.path.join(tmp, f"{name}.json")
        with open(p, "w") as f:
            json.dump({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}, f, sort_keys=True)
        out[name] = p
    return out


def row(phase, r, extra=""):
    print(f"| {phase} | {r['requests'] + r['errors']} | {r['errors']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | {extra} |",
          flush=True)


# ------------------------------------------------------------------------------------------
# abusers


def tls_socket(port, ctx):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(s, server_hostname=HOST)


def abuser(kind, port, ctx, until, counts):
    head = f"POST {PATHS['promotion']} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
    while time.time() < until:
        try:
            if kind == "flood":
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                counts[kind] += 1
                while time.time() < until:
                    time.sleep(1)
                s.close()
                return
            s = tls_socket(port, ctx)
            counts[kind] += 1
            if kind == "slowloris":
                for ch in head:
                    if time.time() > until:
                        break
                    s.send(ch.encode())
                    time.sleep(1)
            elif kind == "slowbody":
                s.send((head + "Content-Length: 1000000\r\n\r\n").encode())
                while time.time() < until:
                    s.send(b" ")
                    time.sleep(1)
            elif kind == "lie":
                s.send((head + "Content-Length: 1000000\r\n\r\n{\"a\": 1}  ").encode())
                s.settimeout(max(0.1, until - time.time()))
                s.recv(1)
            elif kind == "budget":
                body = b"{" + b" " * (3 * 1024 * 1024 - 2) + b"}"
                s.sendall((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
                s.settimeout(15)
                s.recv(65536)
            s.close()
        except OSError:
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--phase-seconds", type=float, default=120)
    ap.add_argument("--abuse-seconds", type=float, default=60)
    ap.add_argument("--phases", default="steady,rotation,abuse")
    args = ap.parse_args()
    phases = args.phases.split(",")
    sh = wb.sh
    sh("cargo", "build", "--release", "-q", "-p", "promote-webhook", "-p", "promote-sandbox", "--bins", "--example", "loadgen", cwd=wb.ROOT)
    tmp = tempfile.mkdtemp(prefix="promote-soak-")
    procs = []
    try:
        wkc = wb.setup_cluster(tmp, procs)
        ca_dir = os.path.join(tmp, "ca")
        make_ca(ca_dir)
        ca = os.path.join(ca_dir, "ca.crt")
        certs = [os.path.join(tmp, "certs-a"), os.path.join(tmp, "certs-b")]
        for c in certs:
            make_leaf(ca_dir, c, 0)
        bodies = mixed_bodies(tmp)
        print(f"{len(bodies)} reviews in turn: {', '.join(bodies)}; open loop; 32 keep-alive connections\n")
        print("| phase | reviews | failed | rps | p50 ms | p99 ms | max ms | notes |")
        print("|---|---|---|---|---|---|---|---|")
        if "steady" in phases:
            a = start_replica(certs[0], wkc)
            procs.append(a["proc"])
            time.sleep(0.5)
            lg = loadgen(a["port"], ca, bodies, args.rate, 5)
            result(lg)
            rss_start = rss_now_mb(a["proc"].pid)
            lg = loadgen(a["port"], ca, bodies, args.rate, args.seconds)
            r = result(lg)
            rss_end = rss_now_mb(a["proc"].pid)
            row(f"steady {args.seconds:.0f} s at {args.rate:.0f}/s", r,
                f"RSS {rss_start:.1f} MiB after warm-up, {rss_end:.1f} MiB at the end, peak {wb.rss_mb(a['proc'].pid):.1f} MiB")
            a["proc"].send_signal(signal.SIGTERM)
            a["proc"].wait()
        if "rotation" in phases:
            a = start_replica(certs[0], wkc)
            b = start_replica(certs[1], wkc)
            procs += [a["proc"], b["proc"]]
            rr = RoundRobin([a, b])
            lg = loadgen(rr.port, ca, bodies, args.rate, args.phase_seconds)
            start = time.time()
            rotations, restarted = 0, False
            while lg.poll() is None:
                t = time.time() - start
                if t >= 20 * (rotations + 1):
                    rotations += 1
                    for c in certs:
                        make_leaf(ca_dir, c, rotations)
                if not restarted and t >= args.phase_seconds / 2:
                    restarted = True
                    b["proc"].send_signal(signal.SIGTERM)
                    b["proc"].wait()
                    nb = start_replica(certs[1], wkc)
                    procs.append(nb["proc"])
                    b.update(nb)
                time.sleep(0.2)
            r = result(lg)
            rr.stop = True
            row(f"rotation {args.phase_seconds:.0f} s at {args.rate:.0f}/s", r,
                f"two replicas behind a round-robin; {rotations} certificate rotations; one replica SIGTERMed and restarted")
            for x in (a, b):
                x["proc"].send_signal(signal.SIGTERM)
            for x in (a, b):
                x["proc"].wait()
        if "abuse" in phases:
            a = start_replica(certs[0], wkc)
            procs.append(a["proc"])
            ctx = ssl.create_default_context(cafile=ca)
            until = time.time() + args.abuse_seconds
            counts = {k: 0 for k in ["slowloris", "slowbody", "lie", "budget", "flood"]}
            threads = []
            for kind, n in [("slowloris", 300), ("slowbody", 100), ("lie", 50), ("budget", 16), ("flood", 1000)]:
                for _ in range(n):
                    t = threading.Thread(target=abuser, args=(kind, a["port"], ctx, until, counts), daemon=True)
                    t.start()
                    threads.append(t)
            time.sleep(2)
            lg = loadgen(a["port"], ca, bodies, 200, args.abuse_seconds - 4, conns=16)
            r = result(lg)
            row(f"abuse {args.abuse_seconds:.0f} s, well-behaved at 200/s", r,
                "connections opened by the abusers: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                + f"; webhook peak RSS {wb.rss_mb(a['proc'].pid):.1f} MiB")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
