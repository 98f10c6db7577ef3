#!/usr/bin/env bash
# Stragglers, synchronous against asynchronous (docs/results/async.md): the
# 16-peer ring of the demo (Fashion-MNIST, MLP 784-128-10, batch 32, iid,
# CURVE on loopback), with and without one peer slowed FACTOR times
# (--slow PEER:FACTOR), in train.mode = sync and async. For each run: the time
# at which the honest peers' mean accuracy first reached the target (by the
# clock: each peer's latest evaluation), the wall time, and the final mean.
#
#   examples/straggler.sh [--rounds R] [--async-rounds R] [--slow PEER:FACTOR] [--target A]
#       [--basis cpu|runnable|compute] [--eval-every E] [--modes sync,async] [--out DIR] [--port P]
#       [--build DIR] [--set section.key=value]...
#
# --basis (train.slowdown_basis, default cpu): what the straggler is slow at.
# cpu: everything (it sleeps FACTOR-1 times the CPU time of its rounds: steps,
# encoding, encryption, decoding, combining); runnable: the same plus its waits
# for a core (FACTOR times slower than the peers that share its cores);
# compute: its gradient steps only.
#
# R rounds in sync mode (default 3000); asynchronous steps are cheaper (nobody
# waits) and mix less per step, so async mode gets --async-rounds local steps
# (default 3 R): the comparison is by the clock, the time to the target.
#
# Writes DIR/results.csv and DIR/table.md; each run's folder stays in DIR/runs/.
# Each run holds flock on $OHM_EXPERIMENT_LOCK (default /tmp/ohm-experiments.lock)
# and runs under nice 5, so that experiments on a shared machine do not
# overlap; the csv records the 1-minute load average before and after each run
# (wall times depend on it).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ohm_init straggler

rounds=3000
async_rounds=
slow=5:10
target=0.85
basis=cpu
eval_every=50
modes=sync,async
out=runs/straggler
port=29600
build=
extra=()

while [ $# -gt 0 ]; do
  case $1 in
  --rounds) ohm_need "$@"; ohm_posint "$1" "$2"; rounds=$2; shift 2 ;;
  --async-rounds) ohm_need "$@"; ohm_posint "$1" "$2"; async_rounds=$2; shift 2 ;;
  --slow) ohm_need "$@"; slow=$2; shift 2 ;;
  --target) ohm_need "$@"; target=$2; shift 2 ;;
  --basis) ohm_need "$@"; basis=$2; shift 2 ;;
  --eval-every) ohm_need "$@"; ohm_posint "$1" "$2"; eval_every=$2; shift 2 ;;
  --modes) ohm_need "$@"; modes=$2; shift 2 ;;
  --out) ohm_need "$@"; out=$2; shift 2 ;;
  --port) ohm_need "$@"; ohm_posint "$1" "$2"; port=$2; shift 2 ;;
  --build) ohm_need "$@"; build=$2; shift 2 ;;
  --set) ohm_need "$@"; extra+=(--set "$2"); shift 2 ;;
  -h | --help) ohm_help ;;
  *) ohm_usage_error "unknown option '$1'" ;;
  esac
done
[[ $slow =~ ^[0-9]+:[0-9.]+$ ]] || ohm_usage_error "--slow expects PEER:FACTOR, not '$slow'"
[[ $basis =~ ^(cpu|runnable|compute)$ ]] ||
  ohm_usage_error "--basis expects cpu, runnable or compute, not '$basis'"
[ -n "$async_rounds" ] || async_rounds=$((3 * rounds))
ohm_build "$build" peer/ohmpeer topology/ohmtopo

mkdir -p "$out/runs"
topo=$out/ring16.topo
"$OHMTOPO" gen ring -n 16 --port "$port" -o "$topo" >/dev/null
csv=$out/results.csv
echo "mode,rounds,straggler,basis,time_to_target_s,wall_s,honest_acc_mean,status,load_before,load_after" >"$csv"

IFS=, read -r -a mode_list <<<"$modes"
for mode in "${mode_list[@]}"; do
  for with in none "$slow"; do
    name=$mode-$([ "$with" = none ] && echo plain || echo "slow${with/:/x}-$basis")
    dir=$out/runs/$name
    rm -rf "$dir"
    args=()
    r=$rounds
    [ "$mode" = async ] && r=$async_rounds
    [ "$with" = none ] || args=(--slow "$with" --set "train.slowdown_basis=$basis")
    printf '%-28s ' "$name"
    rc=0
    ohm_lock
    l0=$(ohm_load)
    nice -n 5 "$OHM_LAUNCH" --topology "$topo" --out "$dir" --quiet --timeout 3600 \
      --config "$OHM_ROOT/examples/configs/demo.ini" --set "train.mode=$mode" \
      --set "train.rounds=$r" --set "train.eval_every=$eval_every" \
      --set train.checkpoint_every=0 --target-acc "$target" "${args[@]}" "${extra[@]}" \
      >"$dir.out" 2>&1 || rc=$?
    l1=$(ohm_load)
    ohm_unlock
    mv "$dir.out" "$dir/launch.out" 2>/dev/null || true
    res=$(python3 - "$dir/summary.json" "$rc" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print(",,,failed")
    sys.exit(0)
t = s.get("time_to_target_s")
acc = s.get("honest_acc_mean")
print("%s,%s,%s,%s" % ("" if t is None else t, s.get("wall_s", ""),
                       "" if acc is None else "%.4f" % acc,
                       "ok" if sys.argv[2] == "0" else "failed"))
EOF
)
    echo "$res (load $l0 -> $l1)"
    echo "$mode,$r,$with,$([ "$with" = none ] || echo "$basis"),$res,$l0,$l1" >>"$csv"
  done
done

python3 - "$csv" "$out/table.md" "$target" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
out = ["Time to %s mean honest accuracy (s), wall time (s) and final mean accuracy (%%), "
       "16-peer ring, Fashion-MNIST demo config." % sys.argv[3], "",
       "Straggler basis (train.slowdown_basis): cpu = slow at everything (sleeps FACTOR-1 "
       "times the CPU time of its rounds), runnable = the same plus its waits for a core, "
       "compute = slow at its gradient steps only.", "",
       "| mode | rounds (local steps) | straggler | basis | time to target (s) | wall (s) "
       "| final acc (%) | load before |",
       "|---|---:|---|---|---:|---:|---:|---:|"]
for r in rows:
    acc = "%.1f" % (100 * float(r["honest_acc_mean"])) if r["honest_acc_mean"] else r["status"]
    out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
        r["mode"], r["rounds"], r["straggler"], r["basis"] or "-",
        r["time_to_target_s"] or "not reached", r["wall_s"], acc, r["load_before"]))
open(sys.argv[2], "w").write("\n".join(out) + "\n")
EOF
cat "$out/table.md"
