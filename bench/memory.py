#!/usr/bin/env python3
"""Benchmark: a promotion's peak memory against the size of the file it edits.

For each size (default 1, 10 and 100 MB) and each structured edit (yaml-update, json-update,
toml-update), builds a Git repository holding one file of that size (a values file with many
small keys, as generated values files are), serves it as file://, and runs one
`kubectl promote --local` promotion that edits one key near the end of that file, commits and
pushes. Reports the peak resident set of the promotion's largest process (ru_maxrss of the
promotion with its children: kubectl-promote and the git processes it runs) and the same for a
promotion that edits a 1 KB file in the same repository (the fixed base), then the factor
(peak - base) / file size. Sizes are interleaved per round; the median of --runs is shown.

usage: bench/memory.py [--sizes 1,10,100] [--runs 3] [--promote target/release/kubectl-promote]
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(*cmd, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


def content(fmt, size):
    """A file of about `size` bytes of `fmt`, whose last key is `app.image.tag`."""
    lines, n = [], 0
    i = 0
    if fmt == "yaml":
        lines.append("services:\n")
        while n < size:
            line = f"  svc-{i:07d}:\n    replicas: {i % 7}\n    image: registry.example/team/svc-{i:07d}:1.0.{i % 100}\n"
            lines.append(line)
            n += len(line)
            i += 1
        lines.append("app:\n  image:\n    tag: old\n")
    elif fmt == "json":
        lines.append('{\n  "services": {\n')
        while n < size:
            line = f'    "svc-{i:07d}": {{"replicas": {i % 7}, "image": "registry.example/team/svc-{i:07d}:1.0.{i % 100}"}},\n'
            lines.append(line)
            n += len(line)
            i += 1
        lines.append('    "last": {}\n  },\n  "app": {"image": {"tag": "old"}}\n}\n')
    else:
        while n < size:
            line = f'[services.svc-{i:07d}]\nreplicas = {i % 7}\nimage = "registry.example/team/svc-{i:07d}:1.0.{i % 100}"\n'
            lines.append(line)
            n += len(line)
            i += 1
        lines.append('[app.image]\ntag = "old"\n')
    return "".join(lines)


def manifests(dir_, url, step, path):
    os.makedirs(dir_, exist_ok=True)
    with open(os.path.join(dir_, "all.yaml"), "w") as f:
        f.write(f"""apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  namespace: bench
alias: bench
origin: {{kind: Warehouse, name: w}}
images:
- repoURL: example/app
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
      - uses: {step}
        config:
          path: ./src/{path}
          updates:
          - key: app.image.tag
            value: ${{{{ ctx.promotion }}}}
      - uses: git-commit
        config: {{path: ./src, message: "promote ${{{{ ctx.promotion }}}}"}}
      - uses: git-push
        config: {{path: ./src}}
""")


def peak_rss_mb(cmd):
    """Peak RSS (MiB) of the largest process of `cmd` and its children."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    err = p.stderr.read().decode()
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"promotion failed: {err}")
    return usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,10,100")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--formats", default="yaml,json,toml")
    ap.add_argument("--promote", default=os.path.join(ROOT, "target/release/kubectl-promote"))
    args = ap.parse_args()
    promote = os.path.abspath(args.promote)
    sizes = [int(s) for s in args.sizes.split(",")]
    formats = args.formats.split(",")
    steps = {"yaml": "yaml-update", "json": "json-update", "toml": "toml-update"}
    root = tempfile.mkdtemp(prefix="promote-memory-")
    try:
        work = os.path.join(root, "work")
        bare = os.path.join(root, "repo.git")
        sh("git", "init", "-q", "-b", "main", work)
        files = {("small", fmt): f"small.{fmt}" for fmt in formats}
        for fmt in formats:
            with open(os.path.join(work, f"small.{fmt}"), "w") as f:
                f.write(content(fmt, 1000))
            for mb in sizes:
                name = f"big-{mb}.{fmt}"
                with open(os.path.join(work, name), "w") as f:
                    f.write(content(fmt, mb * 1_000_000))
                files[(mb, fmt)] = name
        sh("git", "add", "-A", cwd=work)
        sh("git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "files", cwd=work)
        sh("git", "clone", "-q", "--bare", work, bare)
        shutil.rmtree(work)
        url = "file://" + bare
        results = {k: [] for k in files}
        # One promotion first, so that every measured one finds the mirror cache warm.
        warm = os.path.join(root, "man-warm")
        manifests(warm, url, steps[formats[0]], files[("small", formats[0])])
        peak_rss_mb([promote, "stage/test", "--freight-alias", "bench", "--local", warm, "-q", "-o", "name",
                     "--cache-dir", os.path.join(root, "cache")])
        for run in range(args.runs):
            for key, path in files.items():
                fmt = key[1]
                man = os.path.join(root, f"man-{key[0]}-{fmt}-{run}")
                manifests(man, url, steps[fmt], path)
                cache = os.path.join(root, "cache")
                results[key].append(peak_rss_mb([promote, "stage/test", "--freight-alias", "bench", "--local", man,
                                                 "-q", "-o", "name", "--cache-dir", cache]))
        print("| format | file | peak RSS (MiB) | base (1 KB file) | (peak - base) / file |")
        print("|---|---|---|---|---|")
        for fmt in formats:
            base = statistics.median(results[("small", fmt)])
            for mb in sizes:
                peak = statistics.median(results[(mb, fmt)])
                size_mib = mb * 1_000_000 / 2**20
                print(f"| {fmt} | {mb} MB | {peak:.0f} | {base:.0f} | {(peak - base) / size_mib:.2f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
