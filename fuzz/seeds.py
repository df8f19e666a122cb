#!/usr/bin/env python3
"""Write the hand-made seed inputs of every fuzz target into fuzz/corpus/<target>/seed-*.

The fuzzers grow the corpus from these; `scripts/fuzz` keeps what they find (minimized), and the
end-to-end tests replay all of it. Run again after changing a seed; files are rewritten in place.
"""
import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def review(kind, group, op, obj, old=None, user="alice", sub="", ns="p", name=None):
    req = {
        "uid": "u-1", "kind": {"group": group, "version": "v1alpha1", "kind": kind},
        "resource": {"group": group, "version": "v1alpha1", "resource": kind.lower() + "s"},
        "subResource": sub, "name": name or (obj or old or {}).get("metadata", {}).get("name", ""),
        "namespace": ns, "operation": op,
        "userInfo": {"username": user, "uid": "1", "groups": ["system:authenticated"]},
        "object": obj, "oldObject": old, "dryRun": False,
    }
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": req}, sort_keys=True, separators=(",", ":"))


def app(op=None, annotation="p:test", phase=None):
    a = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
         "metadata": {"name": "app", "namespace": "argocd", "resourceVersion": "7",
                      "annotations": {"kargo.akuity.io/authorized-stage": annotation},
                      "managedFields": [{"manager": "argocd", "fieldsV1": {"f:status": {}}}]},
         "spec": {"source": {"repoURL": "https://git.example/r.git", "targetRevision": "main"},
                  "destination": {"server": "https://kubernetes.default.svc"}},
         "status": {"sync": {"status": "Synced", "revision": "abc"}, "health": {"status": "Healthy"},
                    "resources": [{"kind": "Deployment", "name": "api"}]}}
    if op:
        a["operation"] = op
    if phase:
        a["status"]["operationState"] = {"phase": phase, "operation": op or {}}
    return a


SYNC = {"initiatedBy": {"username": "alice"},
        "info": [{"name": "kargo.akuity.io/promotion", "value": "test.01j00000000000000000000000.f"}],
        "sync": {"revisions": ["abc"]}}
STAGE = {"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
         "metadata": {"name": "test", "namespace": "p"},
         "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": {"direct": True}}]},
         "status": {"freightHistory": [{"items": {"Warehouse/w": {"name": "f"}}}], "metadata": {"a": "b"}}}
PROMO = {"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
         "metadata": {"name": "test.01j00000000000000000000000.f", "namespace": "p"},
         "spec": {"stage": "test", "freight": "f",
                  "steps": [{"uses": "argocd-update", "config": {"apps": [{"name": "app"}]}}]},
         "status": {"phase": "Running"}}
FREIGHT = {"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
           "metadata": {"name": "f", "namespace": "p", "labels": {"kargo.akuity.io/alias": "x"}},
           "origin": {"kind": "Warehouse", "name": "w"},
           "images": [{"repoURL": "ghcr.io/acme/api", "tag": "v1"}],
           "status": {"verifiedIn": {"test": {}}}}
K = "kargo.akuity.io"

put("admission", "app-sync", review("Application", "argoproj.io", "UPDATE", app(SYNC), app()))
put("admission", "app-status", review("Application", "argoproj.io", "UPDATE", app(phase="Running"), app(),
                                      user="system:serviceaccount:argocd:argocd-application-controller"))
put("admission", "app-annotate", review("Application", "argoproj.io", "UPDATE", app(annotation="p:prod"), app()))
put("admission", "app-create", review("Application", "argoproj.io", "CREATE", app(SYNC), None))
put("admission", "promotion-create", review("Promotion", K, "CREATE", PROMO))
put("admission", "promotion-status", review("Promotion", K, "UPDATE", {**PROMO, "status": {"phase": "Succeeded"}}, PROMO, sub="status"))
put("admission", "promotion-delete", review("Promotion", K, "DELETE", None, PROMO))
put("admission", "freight-create", review("Freight", K, "CREATE", FREIGHT))
put("admission", "freight-status", review("Freight", K, "UPDATE", FREIGHT, {**FREIGHT, "status": {}}, sub="status"))
put("admission", "stage-status", review("Stage", K, "UPDATE", STAGE, {**STAGE, "status": {}}, sub="status"))
put("admission", "stage-update", review("Stage", K, "UPDATE", STAGE, STAGE))
put("admission", "project", review("Project", K, "CREATE", {"apiVersion": K + "/v1alpha1", "kind": "Project", "metadata": {"name": "p2"}}, ns=""))
put("admission", "task", review("PromotionTask", K, "CREATE", {"apiVersion": K + "/v1alpha1", "kind": "PromotionTask",
    "metadata": {"name": "t", "namespace": "p"}, "spec": {"steps": [{"uses": "git-clone", "config": {"repoURL": "${{ vars.repo }}"}}]}}))
put("admission", "warehouse-ns", review("Warehouse", K, "CREATE", {"apiVersion": K + "/v1alpha1", "kind": "Warehouse", "metadata": {"name": "w2", "namespace": "default"}}, ns="default"))
put("admission", "not-json", "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":")

for name, v in {"one": "p:test", "two": "p:test, q:prod", "glob": "p:*", "empty": " , ", "colon": "p:a:b",
                "space": "  p :  test  ,", "none": "p"}.items():
    put("authorized_stage", name, v)

for name, v in {
    "plain": "no expression here",
    "vars": "${{ vars.repo }}",
    "quote": "${{ quote(vars.tag) }}",
    "image": "${{ imageFrom('ghcr.io/acme/api').Tag }}",
    "commit": "https://x/${{ commitFrom(vars.repo).ID }}/tree",
    "semver": "${{ semverParse(vars.tag).IncMinor().String() }}",
    "ternary": "${{ vars.n > 2 ? 'big' : 'small' }}",
    "map": "${{ map(vars.list, # * 2) }}",
    "outputs": "${{ outputs.a.commit + '-' + ctx.stage }}",
    "status": "${{ status('a') == 'Succeeded' && success() }}",
    "json": "${{ toJSON(vars.nested) }}",
    "config": "${{ configMap('c').key }}",
    "delims": "${% if vars.n > 1 %}",
    "nested": "${{ vars.nested.a.b[2] }} and ${{ len(vars.list) }}",
    "broken": "${{ vars. }}",
}.items():
    put("expression", name, v)

YAML = "# values\nimage:\n  repository: ghcr.io/acme/api  # pinned\n  tag: \"1.0\"\nreplicas: 2\nlist:\n  - a\n  - b: c\nblock: |\n  text\n"
for name, (k, v) in {"tag": ("image.tag", '"v2.0"'), "number": ("replicas", "3"), "new": ("a.b.c", '"x"'),
                     "index": ("list.0", '"z"'), "append": ("list.-1", "true"), "colon": ("image.:0", "1"),
                     "object": ("image", '{"tag":"v3"}')}.items():
    put("yaml_update", name, f"{k}\n{v}\n{YAML}")
put("yaml_update", "crlf", "image.tag\n\"v2\"\n" + YAML.replace("\n", "\r\n"))
put("yaml_update", "flow", "a.b\n\"x\"\n{a: {b: 1}, c: [1, 2]}\n")
put("yaml_update", "empty", "a.b\n1\n")

JSON = '{\n  "image": {"repository": "ghcr.io/acme/api", "tag": "1.0"},\n  "replicas": 2,\n  "list": [1, 2]\n}\n'
for name, (k, v) in {"tag": ("image.tag", '"v2"'), "new": ("a.b", "true"), "index": ("list.1", "5"),
                     "append": ("list.-1", "3"), "escape": ("image\\.tag", '"x"'), "force": ("list.:1", '"y"')}.items():
    put("json_update", name, f"{k}\n{v}\n{JSON}")
put("json_update", "empty", "a\n1\n{}")

TOML = '# app\n[image]\ntag = "1.0"   # pinned\nrepo = \'x\'\n\n[[servers]]\nport = 80\n[[servers]]\nport = 81\n\n[inline]\nt = { a = 1, b = [1, 2] }\n'
for name, (k, v) in {"tag": ("image.tag", '"v2"'), "array": ("servers.1.port", "8080"), "inline": ("inline.t.a", "2"),
                     "inline-array": ("inline.t.b.0", "false"), "missing": ("image.nope", '"x"'), "table": ("image", '"x"')}.items():
    put("toml_update", name, f"{k}\n{v}\n{TOML}")

for name, v in {"https": "https://User:Secret@GitHub.com/Acme/Repo.git/", "scp": "git@github.com:acme/repo.git",
                "ssh": "ssh://git@github.com:22/acme/repo", "oci": "oci://ghcr.io/acme/charts/", "image": "docker.io/library/nginx",
                "port": "localhost:5000/app", "query": "https://x/r.git?ref=main", "space": " \thttps://x/r \u0007"}.items():
    put("urls", name, v)
