#!/usr/bin/env bash
# Wall time of `lossopt run` (the embedded quickstart, then every shipped config with --quick)
# with a cold compilation cache, for the working tree and a git revision, alternately, in
# ROUNDS rounds: what a user waits for from a fresh checkout.
#   bash experiments/benchmarks/bench_lossopt_run.sh [REVISION=57d5757] [ROUNDS=2]
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
revision=${1:-57d5757}
rounds=${2:-2}
then_dir=$(mktemp -d)/then
git -C "$root" worktree add --detach "$then_dir" "$revision" -q
trap 'git -C "$root" worktree remove --force "$then_dir"' EXIT
work=$(mktemp -d)
cd "$work"
run() { # label source [config --quick]
  local label=$1 src=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  LOSSOPT_CACHE_DIR= PYTHONPATH=$src python -c \
    "import sys; from lossopt.cli import main; sys.exit(main(sys.argv[1:]))" \
    run "$@" --out "out-$label-$RANDOM" > /dev/null 2>&1
  local rc=$?
  t1=$(date +%s.%N)
  printf '%-5s rc=%d %6.1f s  %s\n' "$label" "$rc" "$(echo "$t1 - $t0" | bc)" "${1:-quickstart}"
}
for _ in $(seq "$rounds"); do
  run now "$root"
  run then "$then_dir"
  for c in quickstart optimizers robust_regression classification mlp_dropout real_data; do
    run now "$root" "$root/configs/$c.toml" --quick
    run then "$then_dir" "$then_dir/configs/$c.toml" --quick
  done
done
