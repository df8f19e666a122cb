#!/usr/bin/env python3
"""Image discovery against a repository with many tags: `kubectl promote discover` next to a
naive client that lists every tag and fetches every tag's manifest, interleaved, in one run.

Starts Debian's docker-registry (or, with --registry, distribution v3) on 127.0.0.1 (access log on, so requests are counted on the
server side), pushes one small image under N tags through the registry API, then times, round
after round:

  a  kubectl promote discover --local --dry-run  (SemVer, discoveryLimit 20)
  b  the naive client: list all tags (pages of 1,000), GET every tag's manifest and config

Usage: cargo build --release -p kubectl-promote
       python3 bench/discovery.py [--tags 10000] [--rounds 5] [--registry "$(scripts/kube-build --registry)"]
"""

import argparse
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as r:
        return r.status, dict(r.headers), r.read()


def push_blob(base, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _, headers, _ = request("POST", f"{base}/v2/{repo}/blobs/uploads/")
    loc = headers["Location"]
    if loc.startswith("/"):
        loc = base + loc
    sep = "&" if "?" in loc else "?"
    request("PUT", f"{loc}{sep}digest={digest}", data, {"Content-Type": "application/octet-stream"})
    return digest, len(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tags", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--registry", default="/usr/bin/docker-registry",
                    help="the registry binary: Debian's docker-registry (2.8, which answers every tag at "
                         "once) or distribution v3 (scripts/kube-build --registry), which pages by n and last")
    args = ap.parse_args()
    plugin = os.path.join(ROOT, "target/release/kubectl-promote")
    if not os.path.exists(plugin):
        sys.exit("build it first: cargo build --release -p kubectl-promote")
    tmp = tempfile.mkdtemp(prefix="promote-discovery-bench-")
    port = free_port()
    log = open(os.path.join(tmp, "registry.log"), "w")
    with open(os.path.join(tmp, "config.yml"), "w") as f:
        f.write(
            f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {tmp}/data\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
    env = dict(os.environ, OTEL_TRACES_EXPORTER="none")  # distribution v3 exports traces otherwise
    reg = subprocess.Popen([args.registry, "serve", f"{tmp}/config.yml"], stdout=log, stderr=log, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                request("GET", f"{base}/v2/")
                break
            except OSError:
                time.sleep(0.05)
        repo = "bench/app"
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
                          "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        cd, cl = push_blob(base, repo, cfg)
        ld, ll = push_blob(base, repo, b"layer")
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cl},
                               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ll}]}).encode()
        t0 = time.time()
        for i in range(args.tags):
            # Semantic versions, plus every tenth tag a non-version (as CI builds push).
            tag = f"1.{i // 100}.{i % 100}" if i % 10 else f"build-{i}"
            request("PUT", f"{base}/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": MANIFEST})
        print(f"pushed {args.tags} tags in {time.time() - t0:.1f}s", file=sys.stderr)

        kargo = os.path.join(tmp, "kargo")
        os.makedirs(kargo)
        with open(os.path.join(kargo, "w.yaml"), "w") as f:
            f.write("apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: app, namespace: bench}\n"
                    f"spec:\n  subscriptions:\n    - image: {{repoURL: 127.0.0.1:{port}/{repo}}}\n")

        def requests_since(offset):
            log.flush()
            with open(os.path.join(tmp, "registry.log")) as f:
                f.seek(offset)
                text = f.read()
            lines = [line for line in text.splitlines() if '"GET /v2/' in line or '"HEAD /v2/' in line]
            lists = sum(1 for line in lines if "/tags/list" in line)
            return (len(lines), lists), offset + len(text)

        def promote():
            out = subprocess.run([plugin, "discover", "warehouse/app", "-n", "bench", "--local", kargo,
                                  "--dry-run", "-o", "json", "-q"], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(out.stderr)
            return json.loads(out.stdout)["images"][0]["tag"]

        def naive():
            tags, last = [], None
            while True:
                url = f"{base}/v2/{repo}/tags/list?n=1000" + (f"&last={last}" if last else "")
                page = json.loads(request("GET", url)[2])["tags"] or []
                # Debian's registry (distribution 2.8) ignores n and last and answers every tag
                # at once: a page that does not move past `last` is the end.
                if not page or page[-1] == last:
                    break
                tags += page
                last = page[-1]
            for t in tags:
                doc = json.loads(request("GET", f"{base}/v2/{repo}/manifests/{t}", headers={"Accept": MANIFEST})[2])
                request("GET", f"{base}/v2/{repo}/blobs/{doc['config']['digest']}")
            return len(tags)

        offset = requests_since(0)[1]
        times = {"a": [], "b": []}
        reqs = {"a": (0, 0), "b": (0, 0)}
        for _ in range(args.rounds):
            for name, fn in (("a", promote), ("b", naive)):
                t = time.perf_counter()
                result = fn()
                times[name].append(time.perf_counter() - t)
                n, offset = requests_since(offset)
                reqs[name] = n
        a, b = statistics.median(times["a"]), statistics.median(times["b"])
        print(f"newest tag found by discover: {result if isinstance(result, str) else promote()}")
        print(f"registry: {args.registry}")
        print(f"| tags | a: discover | requests (tag pages) | b: naive | requests (tag pages) | a/b |")
        print(f"|---|---|---|---|---|---|")
        print(f"| {args.tags} | {a:.3f} s | {reqs['a'][0]} ({reqs['a'][1]}) | {b:.3f} s | {reqs['b'][0]} ({reqs['b'][1]}) | {a / b:.3f} |")
    finally:
        reg.terminate()
        reg.wait()


if __name__ == "__main__":
    main()
