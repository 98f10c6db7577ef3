#!/usr/bin/env bash
# Analog training on real peers: an 8-peer ring (one ohmpeer process per peer,
# models over ZeroMQ with CURVE on loopback) learns Fashion-MNIST with an MLP
# 784-128-10 whose layers are simulated analog tiles, once per optimizer:
# digital SGD, Analog SGD, Tiki-Taka and Residual Learning, with the same
# rounds, batch and learning rate, combined weights written back exactly; then
# the optimizers listed in --pulsed again with pulsed write-back.
#
#   examples/analog-ring.sh [--rounds R] [--optimizers o1,o2,...] [--pulsed o1,...|none]
#       [--lr LR] [--tau T] [--dw-min D] [--response softbounds|pow|exp|linear|ideal]
#       [--gamma G] [--update expected|stochastic] [--seed S]
#       [--partition iid|dirichlet|label] [--out DIR] [--port P] [--build DIR] [--quick]
#       [--set section.key=value]... [--collect-only]
#
# --collect-only rebuilds results.csv and table.md from the run folders already
# in DIR (same options), without running anything.
#
# Writes DIR/results.csv (one line per run), DIR/table.md (final honest mean
# test accuracy, min and max over the peers, and the energy estimate: analog
# energy, pulses, analog latency, network energy; docs/energy.md) and
# DIR/report.html (ohm-report's comparison of the runs); each run's metrics
# and report stay in DIR/runs/<optimizer>-<writeback>/. Pulses are counted
# where whole pulses fire: expected-value updates fire none, so for the
# energy of the updates pass --set device.granular=true (whole pulses by
# stochastic rounding, the same mean) or --update stochastic.
#
# The device: by default softbounds (q+ = 1 - w/tau, q- = 1 + w/tau, c = 0) with
# tau 0.3 and dw_min 1e-3, expected-value updates; --response and --gamma pick
# another response (e.g. pow with gamma 2: q+- = (1 -+ w/tau)^2), --update
# stochastic the crossbar's pulse trains (BL 31). The MLP's weights live within a
# few tenths, so with tau 0.3 a weight sits at a sizeable fraction of the bound
# and the asymmetric part G(w) = w/tau matters; with tau >= 0.6 Analog SGD is
# only a point or two below digital at these run lengths. c = 0 keeps the
# symmetric point at zero, the condition under which Residual Learning
# converges exactly (docs/design.md, section "Analog tiles").
# Tiki-Taka moves 64 columns per transfer (a full sweep of the 784-input layer
# every 13 updates), beta 0.1 and gamma 0.1 for Tiki-Taka and Residual.
# Each run holds flock /tmp/ohm-experiments.lock so experiments of different
# people on one machine do not overlap. A failed run is recorded as "failed".
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ohm_init analog-ring

rounds=1000
optimizers=digital,analog-sgd,tiki-taka,residual
pulsed=analog-sgd,residual
lr=0.1
tau=0.3
dw_min=0.001
response=softbounds
gamma=1.0
update=expected
seed=1
partition=iid
out=runs/analog-ring
port=27700
build=
extra=()
collect_only=0

while [ $# -gt 0 ]; do
  case $1 in
  --rounds) ohm_need "$@"; rounds=$2; shift 2 ;;
  --optimizers) ohm_need "$@"; optimizers=$2; shift 2 ;;
  --pulsed) ohm_need "$@"; pulsed=$2; shift 2 ;;
  --lr) ohm_need "$@"; lr=$2; shift 2 ;;
  --tau) ohm_need "$@"; tau=$2; shift 2 ;;
  --dw-min) ohm_need "$@"; dw_min=$2; shift 2 ;;
  --response) ohm_need "$@"; response=$2; shift 2 ;;
  --gamma) ohm_need "$@"; gamma=$2; shift 2 ;;
  --update) ohm_need "$@"; update=$2; shift 2 ;;
  --seed) ohm_need "$@"; seed=$2; shift 2 ;;
  --partition) ohm_need "$@"; partition=$2; shift 2 ;;
  --out) ohm_need "$@"; out=$2; shift 2 ;;
  --port) ohm_need "$@"; port=$2; shift 2 ;;
  --build) ohm_need "$@"; build=$2; shift 2 ;;
  --set) ohm_need "$@"; extra+=(--set "$2"); shift 2 ;;
  --quick) rounds=100 pulsed=none; shift ;;
  --collect-only) collect_only=1; shift ;;
  -h | --help) ohm_help ;;
  *) ohm_usage_error "unknown option '$1'" ;;
  esac
done
ohm_count --rounds "$rounds"
[ "$pulsed" = none ] && pulsed=
eval_every=$(((rounds + 5) / 6))
[ "$eval_every" -ge 1 ] || eval_every=1

ohm_build "$build" peer/ohmpeer topology/ohmtopo
ohmtopo=$OHMTOPO
launch=$OHM_LAUNCH

mkdir -p "$out/runs"
topo=$out/ring8.topo
"$ohmtopo" gen ring -n 8 --port "$port" -o "$topo"
csv=$out/results.csv
echo "optimizer,writeback,rounds,lr,response,gamma,update,tau,dw_min,status,honest_acc_mean,honest_acc_min,honest_acc_max,train_loss_mean,round_ms_median,wall_s,analog_j,pulses,analog_latency_s,network_j,dir" >"$csv"

runs=()
IFS=, read -r -a opt_list <<<"$optimizers"
for o in "${opt_list[@]}"; do runs+=("$o:exact"); done
IFS=, read -r -a pul_list <<<"$pulsed"
for o in "${pul_list[@]}"; do runs+=("$o:pulsed"); done

t_start=$(date +%s)
n=0
for r in "${runs[@]}"; do
  opt=${r%%:*} wb=${r##*:}
  n=$((n + 1))
  dir=$out/runs/$opt-$wb
  printf '[%d/%d] %-24s ' "$n" "${#runs[@]}" "$opt $wb"
  rc=0
  if [ "$collect_only" = 1 ]; then
    [ -f "$dir/summary.json" ] || rc=1
  else
    rm -rf "$dir"
    # digital ignores the [device] keys (its tiles are plain floating point).
    flock /tmp/ohm-experiments.lock "$launch" --topology "$topo" --out "$dir" --quiet --timeout 3600 --report \
      --set data.name=fashion-mnist --set "data.partition=$partition" \
      --set model.hidden=128 --set model.activation=relu \
      --set "device.response=$response" --set "device.tau=$tau" --set "device.dw_min=$dw_min" \
      --set "device.gamma=$gamma" --set device.c=0 --set "device.update=$update" \
      --set "optimizer.name=$opt" --set "optimizer.lr=$lr" --set optimizer.schedule=const \
      --set optimizer.batch=32 --set optimizer.beta=0.1 --set optimizer.gamma=0.1 \
      --set optimizer.transfer_every=1 --set optimizer.transfer_columns=64 \
      --set "train.rounds=$rounds" --set "train.eval_every=$eval_every" --set "train.seed=$seed" \
      --set train.checkpoint_every=0 --set aggregate.rule=weighted --set "aggregate.writeback=$wb" \
      --set net.round_timeout_ms=10000 "${extra[@]}" >"$dir.out" 2>&1 || rc=$?
    mv "$dir.out" "$dir/launch.out" 2>/dev/null || true
  fi
  res=$(python3 - "$dir/summary.json" "$rc" <<'EOF'
import glob, json, math, os, sys
try:
    s = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    s = None
acc = list((s or {}).get("final_acc", {}).values())
if (sys.argv[2] != "0" or not s or s.get("honest_finished", len(acc)) != s["honest_peers"]
        or any(math.isnan(a) for a in acc)):
    print("failed,,,,,,%s,,,," % ((s or {}).get("wall_s") or ""))
else:
    # Training loss of the last window (the mean batch loss since the previous
    # evaluation), averaged over the peers: it shows an optimizer's error floor
    # more directly than test accuracy.
    loss = []
    for f in glob.glob(os.path.join(os.path.dirname(sys.argv[1]), "peer-*.jsonl")):
        last = [json.loads(l) for l in open(f) if '"final"' in l]
        if last and last[-1].get("train_loss") is not None:
            loss.append(last[-1]["train_loss"])
    # The energy estimate (docs/energy.md): analog (reads, pulses, converters)
    # and network apart; pulses of updates, transfers and write-back; the
    # analog latency of the busiest peer. Empty for digital runs.
    en, lat, cnt = s.get("energy_j") or {}, s.get("analog_latency_s") or {}, s.get("analog_counters")
    energy = "%.6g,%d,%.6g,%.6g" % (en["analog"], cnt["update_pulses"] + cnt["program_pulses"],
                                    lat["max"], en["network"]) if cnt and en else ",,,%s" % (
                                        "%.6g" % en["network"] if en else "")
    print("ok,%.4f,%.4f,%.4f,%.4f,%.2f,%s,%s" % (sum(acc) / len(acc), min(acc), max(acc),
                                                 sum(loss) / len(loss) if loss else float("nan"),
                                                 s.get("round_ms_median") or 0, s["wall_s"], energy))
EOF
)
  echo "$opt,$wb,$rounds,$lr,$response,$gamma,$update,$tau,$dw_min,$res,$dir" >>"$csv"
  echo "$res" | awk -F, '{ if ($1 == "ok") printf "honest acc %.2f%% (min %.2f%%)  train loss %.4f  %ss\n", 100*$2, 100*$3, $5, $7; else print "FAILED (see launch.out and peer-*.log)" }'
done

python3 - "$csv" "$out/table.md" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
r0 = rows[0] if rows else {}
out = ["Final test accuracy (%%) of the 8 peers, ring, Fashion-MNIST, MLP 784-128-10, batch 32, "
       "lr %s, %s rounds; device %s (gamma %s) tau %s dw_min %s (%s updates)." % (
           r0.get("lr"), r0.get("rounds"), r0.get("response"), r0.get("gamma"), r0.get("tau"),
           r0.get("dw_min"), r0.get("update")),
       "", "Energy: estimates from the [energy] constants (docs/energy.md), summed over the 8 "
       "peers; analog = reads, pulses and converters; latency = the busiest peer's analog "
       "latency. \"-\": no analog tiles, or no pulses counted (expected-value updates).",
       "", "| optimizer | write-back | mean | min | max | train loss | round ms (median) "
       "| analog energy (J) | pulses | analog latency (s) | network energy (J) |",
       "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for r in rows:
    if r["status"] == "ok":
        e = lambda k, f="%.3g": f % float(r[k]) if r.get(k) else "-"
        pulses = int(r["pulses"]) if r.get("pulses") else 0
        out.append("| %s | %s | %.1f | %.1f | %.1f | %.3f | %s | %s | %s | %s | %s |" % (
            r["optimizer"], r["writeback"], 100 * float(r["honest_acc_mean"]),
            100 * float(r["honest_acc_min"]), 100 * float(r["honest_acc_max"]),
            float(r["train_loss_mean"]), r["round_ms_median"], e("analog_j"),
            "{:.3g}".format(pulses) if pulses else "-", e("analog_latency_s"), e("network_j")))
    else:
        out.append("| %s | %s | failed | | | | | | | | |" % (r["optimizer"], r["writeback"]))
open(sys.argv[2], "w").write("\n".join(out) + "\n")
EOF
dirs=()
for r in "${runs[@]}"; do dirs+=("$out/runs/${r%%:*}-${r##*:}"); done
ohm_compare "$out" "${dirs[@]}"
echo "results: $csv"
echo "table:   $out/table.md ($(($(date +%s) - t_start)) s)"
echo "report:  $out/report.html"
cat "$out/table.md"
