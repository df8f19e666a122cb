#!/usr/bin/env bash
# Instructions per review through the webhook's router, in process (no TLS, HTTP or load
# generator), for bench/webhook.py's promotion and status reviews, real decisions and the no-op
# router: webhook/examples/routecost.rs runs under callgrind twice per cell, with 200 and 1,200
# reviews of the same body, and the difference of the totals over 1,000 is one review's count.
# Unlike time, it does not move with the machine's load. Needs valgrind.
#
# usage: bench/instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p promote-webhook --example routecost
bin=target/release/examples/routecost
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 -c "import sys; sys.path.insert(0, 'bench'); import webhook; webhook.bodies(sys.argv[1])" "$out"
total() {
  ROUTECOST_ITERATIONS=$1 ROUTECOST_ROUTER=$2 \
    valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" "$3" >/dev/null 2>&1
  awk '/^(summary|totals):/ { print $2; exit }' "$out/cg"
}
echo "| review | real | no-op |"
echo "|---|---|---|"
for review in promotion status; do
  row="| $review |"
  for router in real noop; do
    a=$(total 200 "$router" "$out/$review.json")
    b=$(total 1200 "$router" "$out/$review.json")
    row="$row $(((b - a) / 1000)) |"
  done
  echo "$row"
done
