#!/usr/bin/env bash
# LeNet-5 on Fashion-MNIST across real peers (docs/results/cnn.md).
#
#   examples/cnn.sh [--out DIR] [--rounds R] [--lr LR] [--port P] [--build DIR]
#       [--set section.key=value]...
#     16 peers on a ring (one ohmpeer process each, CURVE on loopback, Metropolis
#     weights), iid split, batch 32 per peer, digital SGD (examples/configs/lenet5.ini),
#     5000 rounds at step 0.2 on the cosine schedule (falling to 0 at the last round).
#
#   examples/cnn.sh --analog [--optimizers digital,tiki-taka] [--update expected|stochastic]
#       [--rounds R] [--lr LR] [--tau T] [--dw-min D] [--out DIR] [--port P] [--build DIR]
#       [--set section.key=value]...
#     8 peers on a ring, one run per optimizer, the same rounds, batch and rate
#     (default 3000 rounds, step 0.1 on the cosine schedule):
#     LeNet-5 whose five layers (three dense, two conv kernel matrices) are analog
#     tiles; softbounds devices (tau 1, dw_min 1e-3, c 0), expected updates unless
#     --update stochastic (pulse trains for every position of every example, BL 31,
#     update management). Tiki-Taka: beta 0.1, gamma 0.1, one transfer per update
#     of 16 columns (a whole conv kernel matrix every update or two).
#
# Each run is one folder DIR/<name>/ with the peers' metrics, checkpoints,
# summary.md and summary.json; DIR/results.csv gets one line per run with the
# accuracy, the wall time and the 1-minute load average when the run started and
# ended (the machine may be shared: wall time depends on it). Runs hold flock
# /tmp/ohm-experiments.lock so experiments of different people do not overlap,
# and run under nice 5.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ohm_init cnn
root=$OHM_ROOT

analog=0
rounds=
lr=
optimizers=digital,tiki-taka
update=expected
tau=1.0
dw_min=0.001
out=
port=
build=
extra=()

while [ $# -gt 0 ]; do
  case $1 in
  --analog) analog=1; shift ;;
  --rounds) ohm_need "$@"; rounds=$2; shift 2 ;;
  --lr) ohm_need "$@"; lr=$2; shift 2 ;;
  --optimizers) ohm_need "$@"; optimizers=$2; shift 2 ;;
  --update) ohm_need "$@"; update=$2; shift 2 ;;
  --tau) ohm_need "$@"; tau=$2; shift 2 ;;
  --dw-min) ohm_need "$@"; dw_min=$2; shift 2 ;;
  --out) ohm_need "$@"; out=$2; shift 2 ;;
  --port) ohm_need "$@"; port=$2; shift 2 ;;
  --build) ohm_need "$@"; build=$2; shift 2 ;;
  --set) ohm_need "$@"; extra+=(--set "$2"); shift 2 ;;
  -h | --help) ohm_help ;;
  *) ohm_usage_error "unknown option '$1'" ;;
  esac
done
if [ "$analog" = 1 ]; then
  peers=8 rounds=${rounds:-3000} lr=${lr:-0.1} out=${out:-runs/cnn-analog} port=${port:-27900}
else
  peers=16 rounds=${rounds:-5000} lr=${lr:-0.2} out=${out:-runs/cnn} port=${port:-27800}
fi
ohm_posint --rounds "$rounds"
case $update in expected | stochastic) ;; *) ohm_usage_error "--update expected|stochastic, not '$update'" ;; esac
ohm_build "$build" peer/ohmpeer topology/ohmtopo
mkdir -p "$out"
topo=$out/ring$peers.topo
"$OHMTOPO" gen ring -n "$peers" --port "$port" -o "$topo"
csv=$out/results.csv
[ -f "$csv" ] || echo "run,peers,optimizer,update,rounds,lr,status,honest_acc_mean,honest_acc_min,honest_acc_max,wall_s,round_ms_median,load_before,load_after,commit,dir" >"$csv"
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)

run() { # name optimizer [--set ...]
  local name=$1 opt=$2 dir=$out/$1 rc=0
  shift 2
  rm -rf "$dir"
  mkdir -p "$dir"
  local before after
  printf '%-28s ' "$name"
  # The load is read once the lock is held (waiting for it may take long) and again at the end.
  flock /tmp/ohm-experiments.lock nice -n 5 sh -c 'cut -d" " -f1 /proc/loadavg >"$0"; exec "$@"' \
    "$dir/load.before" "$OHM_LAUNCH" --topology "$topo" --out "$dir" \
    --quiet --timeout 7200 --config "$root/examples/configs/lenet5.ini" \
    --set "optimizer.name=$opt" --set "optimizer.lr=$lr" --set "train.rounds=$rounds" \
    --set "train.eval_every=$(((rounds + 5) / 6))" "$@" "${extra[@]}" >"$dir/launch.out" 2>&1 || rc=$?
  before=$(cat "$dir/load.before" 2>/dev/null || echo "")
  after=$(ohm_load)
  python3 - "$dir/summary.json" "$rc" "$name,$peers,$opt,$update,$rounds,$lr" "$before" "$after" \
    "$commit" "$dir" >>"$csv" <<'EOF'
import json, math, sys
path, rc, head, before, after, commit, d = sys.argv[1:]
try:
    s = json.load(open(path))
except (OSError, ValueError):
    s = None
acc = list((s or {}).get("final_acc", {}).values())
if rc != "0" or not s or len(acc) != s["honest_peers"] or any(math.isnan(a) for a in acc):
    print("%s,failed,,,,%s,,%s,%s,%s,%s" % (head, (s or {}).get("wall_s") or "", before, after, commit, d))
else:
    print("%s,ok,%.4f,%.4f,%.4f,%.1f,%.1f,%s,%s,%s,%s" % (
        head, sum(acc) / len(acc), min(acc), max(acc), s["wall_s"], s.get("round_ms_median") or 0,
        before, after, commit, d))
EOF
  tail -n 1 "$csv" | awk -F, '{ if ($7 == "ok") printf "honest acc %.2f%% (min %.2f%%)  %ss wall, load %s -> %s\n", 100*$8, 100*$9, $11, $13, $14; else print "FAILED (see launch.out and peer-*.log)" }'
}

if [ "$analog" = 0 ]; then
  run "digital-ring$peers" digital
else
  IFS=, read -r -a opts <<<"$optimizers"
  for o in "${opts[@]}"; do
    name=$o-ring$peers
    [ "$o" = digital ] || name=$o-$update-ring$peers
    run "$name" "$o" --set device.response=softbounds --set "device.tau=$tau" \
      --set "device.dw_min=$dw_min" --set device.c=0 --set "device.update=$update" \
      --set optimizer.beta=0.1 --set optimizer.gamma=0.1 --set optimizer.transfer_every=1 \
      --set optimizer.transfer_columns=16 --set aggregate.writeback=exact
  done
fi
echo "results: $csv"
column -s, -t <"$csv" | cut -c1-160
