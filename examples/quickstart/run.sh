#!/usr/bin/env bash
# Quick start: promote nginx 1.25.0 into the dev Stage of a throwaway GitOps repository, with no
# cluster. Creates everything under a temporary directory (or $1) and prints the commit it made.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
promote="${KUBECTL_PROMOTE:-kubectl-promote}"

# A bare "remote" holding the GitOps repository.
rm -rf "$work/seed" "$work/gitops.git" "$work/kargo"
cp -r "$here/gitops" "$work/seed"
git -C "$work/seed" init -q -b main
git -C "$work/seed" add -A
git -C "$work/seed" -c user.name=quickstart -c user.email=quickstart@example.com commit -q -m "Initial GitOps repository"
git clone -q --bare "$work/seed" "$work/gitops.git"
repo="file://$work/gitops.git"

# The Kargo manifests, pointed at that repository.
mkdir -p "$work/kargo"
for f in "$here"/kargo/*.yaml; do
  sed "s#GITOPS_REPO_URL#$repo#g" "$f" > "$work/kargo/$(basename "$f")"
done

set -x
"$promote" stage/dev --freight-alias first-light --local "$work/kargo" --cache-dir "$work/cache"
set +x
echo
echo "The commit it pushed:"
git -C "$work/gitops.git" log -1 --stat --format='%h %s%n%n%b' main
