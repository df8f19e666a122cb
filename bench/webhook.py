#!/usr/bin/env python3
"""Benchmark: promote-webhook under load, next to a no-op handler on the same server stack.

Starts promote-sandbox (the API server the webhook reads Promotions from and sends
SubjectAccessReviews to), creates a project, a Stage, a running Promotion and a RoleBinding giving
alice `promote`, then runs promote-webhook twice on 127.0.0.1 over TLS: the real decisions and
`--bench-noop` (same TLS, HTTP/1.1, body limit and body read; answers "allowed" without deciding).
The load generator (webhook/examples/loadgen.rs) uses keep-alive connections and three reviews:

  promotion  a 10 KB Application UPDATE setting a promotion's operation (the Promotion from
             the watch cache, a cached SubjectAccessReview, the full decision)
  status     a 10 KB Application status write by Argo CD (decided without any lookup)
  large      a 1 MB Application status write (2 MB review: object + oldObject)

For each: closed-loop throughput, latency and the server's CPU time per review (utime + stime from
/proc/<pid>/stat, in which the load generator sharing the cores does not count) at 64 connections,
real vs no-op alternated for --rounds; then open-loop latency at a fixed rate (default 2,000
reviews/s) for the 10 KB reviews; then the webhook's peak RSS (VmHWM); then, in process, the cost
of reading each review and of one review through the router next to the no-op router
(webhook/examples/parsecost.rs and routecost.rs).
Reviews are serialized as kube-apiserver serializes them: compact, with the objects' keys sorted
(Go's encoding/json on unstructured objects; the envelope is sorted too, which no reader notices).
Prints Markdown tables.

usage: bench/webhook.py [--seconds 10] [--connections 64] [--rate 2000] [--rounds 3]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
PROMO = "test.01j00000000000000000000000.be79d3d"
HOST = "promote-webhook.promote-system.svc"


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def app(name, size, operation=None, annotation="kargo-demo:test"):
    a = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd", "resourceVersion": "1000",
                     "annotations": {"kargo.akuity.io/authorized-stage": annotation}},
        "spec": {"project": "default",
                 "source": {"repoURL": "https://git.example.com/gitops.git", "path": "env/test", "targetRevision": "main"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": "guestbook"},
                 "syncPolicy": {"syncOptions": ["CreateNamespace=true"]}},
        "status": {"sync": {"status": "Synced", "revision": "a" * 40}, "health": {"status": "Healthy"},
                   "resources": []},
    }
    i = 0
    while len(api_json(a)) < size:
        a["status"]["resources"].append({"group": "apps", "version": "v1", "kind": "Deployment",
                                         "namespace": "guestbook", "name": f"guestbook-{i:06d}",
                                         "status": "Synced", "health": {"status": "Healthy"}})
        i += 1
    if operation is not None:
        a["operation"] = operation
    return a


def review(old, new, user):
    # Serialized as kube-apiserver serializes reviews (Go's encoding/json: compact, the objects'
    # keys sorted).
    return api_json({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "argoproj.io", "version": "v1alpha1", "kind": "Application"},
        "resource": {"group": "argoproj.io", "version": "v1alpha1", "resource": "applications"},
        "name": new["metadata"]["name"], "namespace": "argocd", "operation": "UPDATE",
        "userInfo": {"username": user, "groups": ["system:authenticated"]},
        "object": new, "oldObject": old, "dryRun": False}})


def api_json(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def bodies(tmp):
    # The operation as the mutating hook leaves it (the validating hook checks it is exactly that).
    op = {"initiatedBy": {"username": "alice"},
          "info": [{"name": "Reason", "value": "Promotion triggered a sync of this Application resource."},
                   {"name": "kargo.akuity.io/promotion", "value": PROMO},
                   {"name": "kargo.akuity.io/project", "value": "kargo-demo"}],
          "sync": {"revision": "b" * 40, "syncOptions": ["CreateNamespace=true"]}}
    old = app("guestbook", 5000)
    out = {}
    out["promotion"] = review(old, app("guestbook", 5000, op), "alice")
    new = app("guestbook", 5000)
    new["status"]["reconciledAt"] = "2026-11-24T12:00:00Z"
    ctl = "system:serviceaccount:argocd:argocd-application-controller"
    out["status"] = review(old, new, ctl)
    big_old = app("guestbook", 1_000_000)
    big_new = app("guestbook", 1_000_000)
    big_new["status"]["reconciledAt"] = "2026-11-24T12:00:00Z"
    out["large"] = review(big_old, big_new, ctl)
    paths = {}
    for k, v in out.items():
        p = os.path.join(tmp, f"{k}.json")
        with open(p, "w") as f:
            f.write(v)
        paths[k] = (p, len(v))
    return paths


def start_webhook(tmp, certs, kubeconfig, noop):
    port, mport = free_port(), free_port()
    args = [os.path.join(REL, "promote-webhook"), "serve", "--cert", f"{certs}/tls.crt", "--key", f"{certs}/tls.key",
            "--kubeconfig", kubeconfig, "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{mport}"]
    if noop:
        args.append("--bench-noop")
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            import urllib.request
            if urllib.request.urlopen(f"http://127.0.0.1:{mport}/readyz", timeout=1).status == 200:
                return p, port
        except Exception:
            time.sleep(0.05)
    sys.exit("webhook did not start")


def cpu_seconds(pid):
    # utime + stime of the whole process (all threads), fields 14 and 15 of /proc/<pid>/stat.
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(port, certs, body, conns, seconds, rate=0, pid=None):
    before = cpu_seconds(pid) if pid else 0.0
    out = sh(os.path.join(REL, "examples", "loadgen"), "--url", f"https://{HOST}:{port}/validate-argoproj-io-v1alpha1-application",
             "--resolve", f"{HOST}=127.0.0.1:{port}", "--ca", f"{certs}/ca.crt", "--body", body,
             "--connections", str(conns), "--seconds", str(seconds), "--rate", str(rate))
    r = json.loads(out)
    if pid:
        # The warm-up requests (one per connection) are in the CPU time too.
        r["cpu_us"] = (cpu_seconds(pid) - before) / (r["requests"] + conns) * 1e6
    return r


def median(xs):
    v = sorted(xs)
    return v[len(v) // 2]


def median_run(runs):
    # Each figure's median over the rounds (so one noisy round does not decide).
    return {k: median([r[k] for r in runs]) for k in runs[0]}


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def setup_cluster(tmp, procs):
    """promote-sandbox with the benchmark's project, Stage, running Promotion (with its sync
    plan) and RBAC; returns the webhook's kubeconfig. The sandbox process goes into `procs`."""
    sb = subprocess.Popen([os.path.join(REL, "promote-sandbox"), "up", "--dir", f"{tmp}/sb", "--no-argocd"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(sb)
    while "ready" not in (sb.stdout.readline() or "ready"):
        pass
    kc = f"{tmp}/sb/kubeconfig"
    objects = f"""
apiVersion: v1
kind: Namespace
metadata: {{ name: kargo-demo }}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{ name: test, namespace: kargo-demo }}
spec:
  requestedFreight: [{{ origin: {{ kind: Warehouse, name: guestbook }}, sources: {{ direct: true }} }}]
  promotionTemplate: {{ spec: {{ steps: [{{ uses: argocd-update, config: {{ apps: [{{ name: guestbook }}] }} }}] }} }}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Promotion
metadata: {{ name: {PROMO}, namespace: kargo-demo, annotations: {{ kargo.akuity.io/create-actor: "kubernetes:alice" }} }}
spec: {{ stage: test, freight: be79d3d863f2323dd406cff7a99de434892f8740, steps: [{{ uses: argocd-update }}] }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{ name: promoter }}
rules: [{{ apiGroups: [kargo.akuity.io], resources: [stages], verbs: [promote] }}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: alice, namespace: kargo-demo }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promoter }}
subjects: [{{ kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{ name: promote-webhook }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin }}
subjects: [{{ kind: User, name: "system:serviceaccount:promote-system:promote-webhook", apiGroup: rbac.authorization.k8s.io }}]
"""
    subprocess.run(["kubectl", "--kubeconfig", kc, "apply", "-f", "-"], input=objects, text=True, check=True, capture_output=True)
    subprocess.run(["kubectl", "--kubeconfig", kc, "create", "clusterrole", "cluster-admin", "--verb=*", "--resource=*.*"], capture_output=True)
    # The sync plan the runner records before its write (SECURITY.md): the webhook admits the
    # promotion write only when it matches.
    plan = {"status": {"phase": "Running", "state": {"promote.dev/argocd-update": {"argocd/guestbook": {
        "sources": [{"repoURL": "https://git.example.com/gitops.git", "path": "env/test", "targetRevision": "main"}],
        "revisions": ["b" * 40]}}}}}
    subprocess.run(["kubectl", "--kubeconfig", kc, "-n", "kargo-demo", "patch", "promotion", PROMO, "--subresource=status",
                    "--type", "merge", "-p", json.dumps(plan)], check=True, capture_output=True)
    wkc = f"{tmp}/webhook.kubeconfig"
    with open(kc) as f, open(wkc, "w") as g:
        g.write(f.read().replace("current-context: admin", "current-context: promote-webhook"))
    return wkc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--rounds", type=int, default=3, help="closed-loop rounds per review, real and no-op alternated; medians are reported")
    args = ap.parse_args()
    sh("cargo", "build", "--release", "-q", "-p", "promote-webhook", "-p", "promote-sandbox", "--bins", "--example", "loadgen", "--example", "parsecost", "--example", "routecost", cwd=ROOT)
    tmp = tempfile.mkdtemp(prefix="promote-webhook-bench-")
    procs = []
    try:
        wkc = setup_cluster(tmp, procs)
        certs = f"{tmp}/certs"
        sh(os.path.join(REL, "promote-webhook"), "certs", "--out", certs)
        paths = bodies(tmp)
        real, real_port = start_webhook(tmp, certs, wkc, False)
        procs.append(real)
        noop, noop_port = start_webhook(tmp, certs, wkc, True)
        procs.append(noop)
        # Sanity: the promotion review is allowed by the real webhook (a lookup really happens).
        check = load(real_port, certs, paths["promotion"][0], 1, 0.5)
        if check["errors"]:
            sys.exit(f"promotion review failed: {check}")
        out = subprocess.run([os.path.join(REL, "promote-webhook"), "review", "-f", paths["promotion"][0], "--kubeconfig", wkc],
                             capture_output=True, text=True)
        if '"allowed": true' not in out.stdout:
            sys.exit(f"the benchmark's promotion review is not allowed: {out.stdout}{out.stderr}")

        print(f"## closed loop, {args.connections} keep-alive connections, {args.rounds} rounds of {args.seconds:.0f} s each, real and no-op alternated (medians; the ratios are the medians of each round's real/no-op pair)\n")
        print("| review | size | real rps | no-op rps | real/no-op rps | real p50 ms | real p99 ms | no-op p99 ms | server CPU per review, real / no-op | no-op/real CPU |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in ["promotion", "status", "large"]:
            path, size = paths[name]
            conns = args.connections if name != "large" else min(args.connections, 16)
            rs, ns = [], []
            for _ in range(args.rounds):
                rs.append(load(real_port, certs, path, conns, args.seconds, pid=real.pid))
                ns.append(load(noop_port, certs, path, conns, args.seconds, pid=noop.pid))
            r, n = median_run(rs), median_run(ns)
            # Ratios of the rounds' adjacent pairs (real, then no-op right after), and their median.
            rps_ratios = [a["rps"] / max(b["rps"], 1) for a, b in zip(rs, ns)]
            cpu_ratios = [b["cpu_us"] / a["cpu_us"] for a, b in zip(rs, ns)]
            if args.rounds > 1:
                print(f"<!-- {name}: real/no-op rps by round {[round(x, 2) for x in rps_ratios]}, "
                      f"CPU no-op/real by round {[round(x, 2) for x in cpu_ratios]} -->")
            if r["errors"] or n["errors"]:
                print(f"<!-- errors: real {r['errors']} no-op {n['errors']} -->")
            print(f"| {name} | {size/1024:.0f} KB | {r['rps']:.0f} | {n['rps']:.0f} | {median(rps_ratios):.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {n['p99_ms']:.2f} | {r['cpu_us']:.1f} / {n['cpu_us']:.1f} µs | {median(cpu_ratios):.2f} |")
        print(f"\n## open loop at {args.rate:.0f} reviews/s, {args.connections} connections, {args.seconds:.0f} s\n")
        print("| review | real p50 ms | real p99 ms | real max ms | no-op p99 ms | errors |")
        print("|---|---|---|---|---|---|")
        for name in ["promotion", "status"]:
            path, _ = paths[name]
            r = load(real_port, certs, path, args.connections, args.seconds, args.rate)
            n = load(noop_port, certs, path, args.connections, args.seconds, args.rate)
            print(f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} | {n['p99_ms']:.2f} | {r['errors']} |")
        print(f"\npeak RSS (VmHWM): real {rss_mb(real.pid):.1f} MB, no-op {rss_mb(noop.pid):.1f} MB")
        cost = json.loads(sh(os.path.join(REL, "examples", "parsecost"), *[p for p, _ in paths.values()]))
        print("\nin-process parse_review per body: " + ", ".join(f"{n} {cost[p]:.2f} us" for n, (p, _) in paths.items()))
        # The router alone (no TLS, HTTP or load generator), its logs discarded.
        small = [paths[n][0] for n in ["promotion", "status"]]
        route = json.loads(subprocess.run([os.path.join(REL, "examples", "routecost"), *small], check=True,
                                          capture_output=True, text=True).stdout)
        print("in-process router per review (real / no-op): " + ", ".join(
            f"{n} {route[paths[n][0]]['real_us']:.2f} / {route[paths[n][0]]['noop_us']:.2f} us" for n in ["promotion", "status"]))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
