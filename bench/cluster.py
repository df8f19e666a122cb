#!/usr/bin/env python3
"""Benchmark: what one cluster promotion costs the API server and how much time is the plugin's own.

Starts promote-sandbox (with its Argo CD simulator) and a local bare Git repository with a dev
overlay, installs promote's RBAC roles, a project with a Warehouse, a dev Stage (git-clone,
kustomize-set-image, git-commit, git-push, argocd-update of one Application) and the Application,
creates --runs Freight, then promotes each to dev as alice with PROMOTE_REPORT_REQUESTS=1, which
makes the plugin print its request count (apart from polls while waiting for Argo CD) and its time
split: steps (Git work and the Argo CD wait) vs everything else (resolve, availability, create the
Promotion, claim the Stage, progress and result records). Also times the process end to end.

With --compare PLUGIN (another kubectl-promote build, e.g. of an earlier commit) every run
promotes once with each binary, in alternating order, and the table has a row for each and their
ratio: the one comparison this noisy machine allows.

usage: bench/cluster.py [--runs 10] [--compare PATH]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


STAGE = """apiVersion: v1
kind: Namespace
metadata: {{ name: demo }}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{ name: dev, namespace: demo }}
spec:
  requestedFreight:
    - origin: {{ kind: Warehouse, name: web }}
      sources: {{ direct: true }}
  promotionTemplate:
    spec:
      steps:
        - uses: git-clone
          config: {{ repoURL: "{url}", checkout: [{{ branch: main, path: ./src }}] }}
        - uses: kustomize-set-image
          as: image
          config: {{ path: ./src/env/dev, images: [{{ image: nginx, tag: "${{{{ imageFrom('nginx').Tag }}}}" }}] }}
        - uses: git-commit
          config: {{ path: ./src, message: "${{{{ outputs.image.commitMessage }}}}" }}
        - uses: git-push
          as: push
          config: {{ path: ./src }}
        - uses: argocd-update
          config:
            apps:
              - name: demo-dev
                sources: [{{ repoURL: "{url}", desiredRevision: "${{{{ outputs.push.commit }}}}" }}]
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: demo-dev
  namespace: argocd
  annotations: {{ kargo.akuity.io/authorized-stage: "demo:dev" }}
spec:
  project: default
  destination: {{ server: https://kubernetes.default.svc, namespace: demo }}
  source: {{ repoURL: "{url}", path: env/dev, targetRevision: main }}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{ name: web, namespace: demo }}
spec:
  subscriptions: [{{ image: {{ repoURL: nginx }} }}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: alice, namespace: demo }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-promoter }}
subjects: [{{ kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: alice, namespace: argocd }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-argocd-syncer }}
subjects: [{{ kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }}]
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--compare", default="")
    a = ap.parse_args()
    sh("cargo", "build", "--release", "-q", "-p", "kubectl-promote", "-p", "promote-sandbox", "--bins", cwd=ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        seed = f"{tmp}/seed"
        os.makedirs(f"{seed}/env/dev")
        with open(f"{seed}/env/dev/kustomization.yaml", "w") as f:
            f.write("resources: []\nimages:\n- name: nginx\n  newTag: \"1.0.0\"\n")
        sh("git", "init", "-q", "-b", "main", seed)
        sh("git", "-C", seed, "add", "-A")
        sh("git", "-C", seed, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "seed")
        sh("git", "clone", "-q", "--bare", seed, f"{tmp}/gitops.git")
        url = f"file://{tmp}/gitops.git"
        sb = subprocess.Popen([os.path.join(REL, "promote-sandbox"), "up", "--dir", f"{tmp}/sb"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            while "ready" not in (sb.stdout.readline() or "ready"):
                pass
            env = dict(os.environ, KUBECONFIG=f"{tmp}/sb/kubeconfig", PROMOTE_CACHE_DIR=f"{tmp}/cache",
                       PROMOTE_REPORT_REQUESTS="1")
            env.pop("KUBERNETES_SERVICE_HOST", None)
            sh("kubectl", "apply", "-f", os.path.join(ROOT, "manifests/rbac/roles.yaml"), env=env)
            subprocess.run(["kubectl", "apply", "-f", "-"], input=STAGE.format(url=url), env=env, check=True,
                           capture_output=True, text=True)
            plugins = [("this build", os.path.join(REL, "kubectl-promote"))]
            if a.compare:
                plugins.append(("compared", os.path.abspath(a.compare)))
            rows = {name: [] for name, _ in plugins}
            n = 0
            for i in range(a.runs):
                order = plugins if i % 2 == 0 else list(reversed(plugins))
                for name, plugin in order:
                    n += 1
                    sh(plugin, "-n", "demo", "freight", "create", "--warehouse", "web", "--image", f"nginx:1.{n}.0",
                       "--alias", f"v{n}", env=env)
                    t0 = time.perf_counter()
                    p = subprocess.run([plugin, "--context", "alice", "-n", "demo", "stage/dev", "--freight-alias",
                                        f"v{n}", "-q", "-o", "name"], env=env, capture_output=True, text=True)
                    wall = (time.perf_counter() - t0) * 1000
                    if p.returncode != 0:
                        sys.exit(f"promotion failed:\n{p.stderr}")
                    req = re.search(r"api requests: (\d+) \(\+(\d+) polls", p.stderr)
                    tim = re.search(r"timing: total (\d+) ms, steps (\d+) ms, overhead (\d+) ms", p.stderr)
                    rows[name].append((int(req[1]), int(req[2]), int(tim[1]), int(tim[2]), int(tim[3]), wall))
        finally:
            sb.terminate()
            sb.wait()
    print(f"{a.runs} promotions of one Stage (5 steps, one Application) per binary, medians:\n")
    print("| binary | API requests | polls while waiting | in-process total | steps (Git + Argo CD) | plugin overhead | process wall |")
    print("|---|---|---|---|---|---|---|")
    meds = {}
    for name, rs in rows.items():
        med = lambda k: statistics.median(r[k] for r in rs)
        meds[name] = [med(k) for k in range(6)]
        m = meds[name]
        print(f"| {name} | {m[0]:.0f} | {m[1]:.0f} | {m[2]:.0f} ms | {m[3]:.0f} ms | **{m[4]:.0f} ms** | {m[5]:.0f} ms |")
    if "compared" in meds:
        t, c = meds["this build"], meds["compared"]
        print(f"| ratio | {t[0] / c[0]:.2f} | | {t[2] / c[2]:.2f} | {t[3] / c[3]:.2f} | **{t[4] / max(c[4], 1):.2f}** | {t[5] / c[5]:.2f} |")
    for name, rs in rows.items():
        print(f"\n{name}: requests per run: {[r[0] for r in rs]}; overhead per run (ms): {[r[4] for r in rs]}")

if __name__ == "__main__":
    main()
