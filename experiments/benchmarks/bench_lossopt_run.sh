#!/usr/bin/env bash
# Wall and CPU time of `lossopt run` (the embedded quickstart, then every shipped config with
# --quick) with a cold compilation cache, for the working tree ("now") and a git revision
# ("then"), alternately, in ROUNDS rounds: what a user waits for from a fresh checkout. Prints
# each run, then per config the min and median wall and CPU (user + system) seconds of each
# side and the ratio of the medians (now / then). Each run's line also shows how the machine's
# CPUs were spent while it ran (from /proc/stat: busy, idle, and stolen by the hypervisor for
# other tenants), so a slow run on a shared machine shows why.
#   bash experiments/benchmarks/bench_lossopt_run.sh [REVISION=57d5757] [ROUNDS=2] [CONFIGS]
# CONFIGS: a comma-separated subset, e.g. "default,optimizers" (default: all).
# Each run goes through the console script's entry point (`console_main` where the revision has
# one, else `sys.exit(main())`). BYTECODE=1 compiles both trees' sources to bytecode first and
# lets Python use it, as on a machine without PYTHONDONTWRITEBYTECODE (this one sets it, so by
# default every run compiles lossopt's sources afresh: about 0.35 s).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
revision=${1:-57d5757}
rounds=${2:-2}
configs=${3:-default,quickstart,optimizers,robust_regression,classification,mlp_dropout,real_data,mgh}
then_dir=$(mktemp -d)/then
git -C "$root" worktree add --detach "$then_dir" "$revision" -q
trap 'git -C "$root" worktree remove --force "$then_dir"' EXIT
work=$(mktemp -d)
if [ "${BYTECODE:-0}" = 1 ]; then
  unset PYTHONDONTWRITEBYTECODE
  python -m compileall -q "$root/lossopt" "$then_dir/lossopt" > /dev/null
fi
log="$work/times.txt"
cd "$work"
cpu_times() { # the machine's total, busy (user + nice + system), idle and steal jiffies
  [ -r /proc/stat ] || { echo "0 0 0 0"; return; }
  read -r _ u n s i w q sq st _ < /proc/stat
  echo "$((u + n + s + i + w + q + sq + st)) $((u + n + s)) $i $st"
}
run() { # label source config
  local label=$1 src=$2 config=$3 args=() t0 b0 i0 s0 t1 b1 i1 s1 shares=""
  [ "$config" != default ] && args=("$src/configs/$config.toml" --quick)
  if [ "$config" != default ] && [ ! -f "$src/configs/$config.toml" ]; then
    printf '%-5s %s: no such config in this tree, skipped\n' "$label" "$config"
    return
  fi
  read -r t0 b0 i0 s0 < <(cpu_times)
  LOSSOPT_CACHE_DIR= PYTHONPATH=$src /usr/bin/time -f "%e %U %S" -o "$work/t" python -c \
    "import sys, lossopt.cli as c; (getattr(c, 'console_main', None) or (lambda: sys.exit(c.main())))()" \
    run "${args[@]}" --out "out-$label-$RANDOM" > /dev/null 2> "$work/err"
  local rc=$?
  read -r t1 b1 i1 s1 < <(cpu_times)
  [ "$t1" -gt "$t0" ] && shares=$(printf 'machine: busy %d%% idle %d%% steal %d%%' \
    $((100 * (b1 - b0) / (t1 - t0))) $((100 * (i1 - i0) / (t1 - t0))) $((100 * (s1 - s0) / (t1 - t0))))
  read -r wall user sys < <(tail -n 1 "$work/t")
  [ "$rc" -ne 0 ] && tail -n 3 "$work/err" >&2
  printf '%-5s rc=%d wall %6.2f s  cpu %6.2f s  %-18s %s\n' "$label" "$rc" "$wall" \
    "$(echo "$user + $sys" | bc)" "$config" "$shares"
  echo "$config $label $wall $(echo "$user + $sys" | bc)" >> "$log"
}
for _ in $(seq "$rounds"); do
  for c in ${configs//,/ }; do
    run now "$root" "$c"
    run then "$then_dir" "$c"
  done
done
python3 - "$log" <<'EOF'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    config, label, wall, cpu = line.split()
    runs[config, label].append((float(wall), float(cpu)))
print(f"\n{'config (--quick but default)':28s} {'now wall min/med':>17s} {'then wall min/med':>18s}"
      f" {'now cpu med':>12s} {'then cpu med':>13s} {'wall now/then':>14s}")
for config in dict.fromkeys(c for c, _ in runs):
    now, then = runs[config, "now"], runs[config, "then"]
    if not now or not then:  # the config is in one tree only
        continue
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    print(f"{config:28s} {min(x[0] for x in now):7.2f} / {med(now, 0):6.2f}  "
          f"{min(x[0] for x in then):7.2f} / {med(then, 0):6.2f}  {med(now, 1):11.2f} "
          f"{med(then, 1):13.2f} {med(now, 0) / med(then, 0):13.2f}x")
EOF
