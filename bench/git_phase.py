#!/usr/bin/env python3
"""Benchmark: the Git phase of a promotion on a large GitOps repository.

Builds a synthetic repository with `git fast-import` (FILES files, COMMITS commits), serves it
with `git daemon` on 127.0.0.1, and times in the same run, interleaved:

  (a) kubectl promote, cold: empty mirror cache
  (b) kubectl promote, warm: the mirror cache from earlier promotions
  (c) the usual CLI pipeline: git clone + edit + git commit + git push
  (d) the best CLI pipeline: git clone --depth 1 --filter=blob:none --sparse + sparse-checkout of
      the edited directory + edit + commit + push
  (e) the floor of any Git client: in a warm bare mirror, git fetch + one commit written straight
      into the object database (git fast-import) + git push; what a promotion would still cost
      with in-process object writes (libgit2/gitoxide) instead of git child processes

Every run edits one values file and pushes one commit. Prints a Markdown table of medians.

With --history-factor F it also builds a second repository with F times the commits (same files)
and times (b) against both, interleaved, to show how a warm promotion scales with history length.

The server repositories are maintained the way Git hosts keep theirs: fully repacked with a
reachability bitmap and a commit-graph.

usage: bench/git_phase.py [--files N] [--commits N] [--runs N] [--promote PATH] [--history-factor F]
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def sh(*args, cwd=None, env=None, stdin=None):
    r = subprocess.run(args, cwd=cwd, env=env, input=stdin, capture_output=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed:\n{r.stderr.decode()}")
    return r.stdout.decode()


def build_repo(path, files, commits):
    """A bare repo whose main has `files` files and `commits` commits, via fast-import."""
    sh("git", "init", "-q", "--bare", "-b", "main", path)
    apps = max(1, files // 10)
    def data(text):
        b = text.encode()
        return b"data %d\n%s\n" % (len(b), b)
    def stream():
        t = 1_700_000_000
        yield b"commit refs/heads/main\ncommitter Bench <bench@example.com> %d +0000\n" % t
        yield data("initial layout")
        n = 0
        for a in range(apps):
            for f in range(10):
                if n == files:
                    break
                if f == 0:
                    p = f"apps/app-{a:05d}/env/test/values.yaml"
                    body = f"# values for app {a}\nimage:\n  repository: example/app-{a}\n  tag: \"1.0.0\"\nreplicas: 2\n"
                else:
                    p = f"apps/app-{a:05d}/manifests/file-{f}.yaml"
                    body = f"kind: ConfigMap\nmetadata:\n  name: app-{a}-{f}\ndata:\n  key: value-{a}-{f}\n"
                yield b"M 100644 inline %s\n" % p.encode()
                yield data(body)
                n += 1
        for c in range(1, commits):
            a = (c * 7919) % apps
            yield b"commit refs/heads/main\ncommitter Bench <bench@example.com> %d +0000\n" % (t + c)
            yield data(f"history {c}")
            yield b"M 100644 inline apps/app-%05d/manifests/file-1.yaml\n" % a
            yield data(f"kind: ConfigMap\nmetadata:\n  name: app-{a}-1\ndata:\n  rev: \"{c}\"\n")
    p = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=path, stdin=subprocess.PIPE)
    for chunk in stream():
        p.stdin.write(chunk)
    p.stdin.close()
    if p.wait() != 0:
        sys.exit("fast-import failed")
    for k, v in [("uploadpack.allowFilter", "true"), ("uploadpack.allowAnySHA1InWant", "true"), ("daemon.receivepack", "true"), ("gc.auto", "0")]:
        sh("git", "config", k, v, cwd=path)
    sh("git", "repack", "-adbq", cwd=path)
    sh("git", "commit-graph", "write", "--reachable", cwd=path)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.com", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@example.com")


def manifests(dir_, url, app):
    os.makedirs(dir_, exist_ok=True)
    with open(os.path.join(dir_, "all.yaml"), "w") as f:
        f.write(f"""apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  namespace: bench
alias: bench
origin: {{kind: Warehouse, name: w}}
images:
- repoURL: example/app-{app}
  tag: 2.0.0
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: test
  namespace: bench
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: w}}
    sources: {{direct: true}}
  promotionTemplate:
    spec:
      steps:
      - uses: git-clone
        config:
          repoURL: {url}
          checkout: [{{branch: main, path: ./src}}]
      - uses: yaml-update
        config:
          path: ./src/apps/app-{app:05d}/env/test/values.yaml
          updates:
          - key: image.tag
            value: ${{{{ ctx.promotion }}}}
      - uses: git-commit
        config: {{path: ./src, message: "promote ${{{{ ctx.promotion }}}}"}}
      - uses: git-push
        config: {{path: ./src}}
""")


def connectivity_check_seconds(traces):
    """Seconds the server spent in receive-pack's connectivity check (`git rev-list --objects
    --stdin --not --all ...`), from the trace2 event files of one push."""
    total = 0.0
    for name in os.listdir(traces):
        argv, elapsed = None, None
        with open(os.path.join(traces, name)) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("event") == "start":
                    argv = e.get("argv", [])
                elif e.get("event") == "exit":
                    elapsed = e.get("t_abs")
        if argv and "rev-list" in argv and "--stdin" in argv and elapsed is not None:
            total += elapsed
    return total


def git_daemon():
    """The git-daemon program itself: `git daemon` runs it as a child, and killing the wrapper
    would leave the server running."""
    return os.path.join(sh("git", "--exec-path").strip(), "git-daemon")


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--commits", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--promote", default="target/release/kubectl-promote")
    ap.add_argument("--label", default="")
    ap.add_argument("--history-factor", type=int, default=0)
    args = ap.parse_args()
    promote = os.path.abspath(args.promote)
    root = tempfile.mkdtemp(prefix="promote-bench-")
    try:
        t0 = time.perf_counter()
        repo = os.path.join(root, "gitops.git")
        build_repo(repo, args.files, args.commits)
        size = sh("du", "-sh", repo).split()[0]
        print(f"# repository: {args.files} files, {args.commits} commits, {size} packed (built in {time.perf_counter() - t0:.1f}s)", file=sys.stderr)
        port = free_port()
        daemon = subprocess.Popen([git_daemon(), "--reuseaddr", "--export-all", "--enable=receive-pack", "--listen=127.0.0.1", f"--port={port}", f"--base-path={root}", root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        url = f"git://127.0.0.1:{port}/gitops.git"
        results = {k: [] for k in "abcde"}
        floor = os.path.join(root, "floor.git")
        sh("git", "clone", "-q", "--bare", "--filter=blob:none", url, floor)

        def bare_floor(i):
            sh("git", "fetch", "-q", "origin", "+main:refs/heads/main", cwd=floor)
            tip = sh("git", "rev-parse", "main", cwd=floor).strip()
            body = f"# values for app 2\nimage:\n  tag: \"floor-{i}\"\n".encode()
            stream = (b"commit refs/heads/main\ncommitter Bench <bench@example.com> 1700000000 +0000\ndata 5\nfloor\nfrom %s\nM 100644 inline apps/app-00002/env/test/values.yaml\ndata %d\n%s\n" % (tip.encode(), len(body), body))
            r = subprocess.run(["git", "fast-import", "--quiet"], cwd=floor, input=stream, capture_output=True)
            if r.returncode != 0:
                sys.exit(f"fast-import failed: {r.stderr.decode()}")
            sh("git", "push", "-q", "origin", "main", cwd=floor)

        warm_cache = os.path.join(root, "warm-cache")
        man = os.path.join(root, "kargo")
        manifests(man, url, 1)
        # prime the warm cache once
        sh(promote, "stage/test", "--freight-alias", "bench", "--local", man, "-q", "-o", "name", "--cache-dir", warm_cache)

        def run_promote(cache):
            sh(promote, "stage/test", "--freight-alias", "bench", "--local", man, "-q", "-o", "name", "--cache-dir", cache)

        def cli(best, i):
            work = os.path.join(root, f"cli-{'d' if best else 'c'}-{i}")
            if best:
                sh("git", "clone", "-q", "--depth", "1", "--filter=blob:none", "--sparse", url, work)
                sh("git", "sparse-checkout", "set", "apps/app-00001/env/test", cwd=work)
            else:
                sh("git", "clone", "-q", url, work)
            p = os.path.join(work, "apps/app-00001/env/test/values.yaml")
            with open(p) as f:
                text = f.read()
            with open(p, "w") as f:
                f.write(text.replace("replicas: 2", f"replicas: 2\n# run {i} {'d' if best else 'c'}"))
            sh("git", "commit", "-qam", f"cli {i}", cwd=work, env=GIT_ENV)
            sh("git", "push", "-q", "origin", "HEAD:main", cwd=work)
            shutil.rmtree(work)

        for i in range(args.runs):
            cold = os.path.join(root, f"cold-{i}")
            results["a"].append(timed(lambda: run_promote(cold)))
            shutil.rmtree(cold)
            results["b"].append(timed(lambda: run_promote(warm_cache)))
            results["c"].append(timed(lambda: cli(False, i)))
            results["d"].append(timed(lambda: cli(True, i)))
            results["e"].append(timed(lambda: bare_floor(i)))
        history = None
        if args.history_factor:
            t0 = time.perf_counter()
            big = os.path.join(root, "gitops-long.git")
            build_repo(big, args.files, args.commits * args.history_factor)
            print(f"# long-history repository: {args.commits * args.history_factor} commits, {sh('du', '-sh', big).split()[0]} (built in {time.perf_counter() - t0:.1f}s)", file=sys.stderr)
            # A second daemon whose processes write trace2 events (one file per process), to
            # split each promotion's time into the server's connectivity check and the rest.
            traces = os.path.join(root, "trace2")
            os.makedirs(traces)
            port2 = free_port()
            traced = subprocess.Popen([git_daemon(), "--reuseaddr", "--export-all", "--enable=receive-pack", "--listen=127.0.0.1", f"--port={port2}", f"--base-path={root}", root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, GIT_TRACE2_EVENT=traces))
            time.sleep(0.5)
            runs = {}
            for name, repo_name in [("short", "gitops.git"), ("long", "gitops-long.git")]:
                man_h = os.path.join(root, f"kargo-{name}")
                manifests(man_h, f"git://127.0.0.1:{port2}/{repo_name}", 1)
                cache_h = os.path.join(root, f"warm-cache-{name}")
                sh(promote, "stage/test", "--freight-alias", "bench", "--local", man_h, "-q", "-o", "name", "--cache-dir", cache_h)
                runs[name] = (man_h, cache_h, [], [])
            for i in range(args.runs):
                for name, (man_h, cache_h, total, check) in runs.items():
                    for f in os.listdir(traces):
                        os.remove(os.path.join(traces, f))
                    total.append(timed(lambda: sh(promote, "stage/test", "--freight-alias", "bench", "--local", man_h, "-q", "-o", "name", "--cache-dir", cache_h)))
                    time.sleep(0.2)  # let the server's processes finish writing their events
                    check.append(connectivity_check_seconds(traces))
            traced.kill()
            history = {name: (statistics.median(t), statistics.median(c), statistics.median([a - b for a, b in zip(t, c)])) for name, (_, _, t, c) in runs.items()}
        daemon.kill()
        med = {k: statistics.median(v) for k, v in results.items()}
        label = args.label or f"{args.files} files, {args.commits} commits"
        print(f"| {label} | a: promote cold | b: promote warm | c: clone+commit+push | d: shallow blobless sparse clone+commit+push | e: fetch+fast-import+push | a/d | b/c | b/e |")
        print("|---|---|---|---|---|---|---|---|---|")
        print(f"| median of {args.runs} (s) | {med['a']:.3f} | {med['b']:.3f} | {med['c']:.3f} | {med['d']:.3f} | {med['e']:.3f} | {med['a']/med['d']:.2f} | {med['b']/med['c']:.3f} | {med['b']/med['e']:.2f} |")
        if history:
            (ts, cs, rs), (tl, cl, rl) = history["short"], history["long"]
            print()
            print(f"| warm promotion, same run, median of {args.runs} | {args.commits} commits | {args.commits * args.history_factor} commits | growth |")
            print("|---|---|---|---|")
            print(f"| end to end (s) | {ts:.3f} | {tl:.3f} | {tl/ts:.2f}x |")
            print(f"| the server's connectivity check (s) | {cs:.3f} | {cl:.3f} | {cl/max(cs, 1e-9):.2f}x |")
            print(f"| everything else (s) | {rs:.3f} | {rl:.3f} | {rl/rs:.2f}x |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
