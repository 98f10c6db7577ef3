#!/usr/bin/env bash
# Decentralized vs centralized: accuracy and flatness of the minimum found
# (docs/results/flatness.md; Cao, Wu, Yuan, Sayed, "On the trade-off between
# flatness and optimization in distributed learning").
#
#   examples/flatness.sh [--out DIR] [--peers N] [--rounds R] [--seeds S] [--quick]
#       [--regimes large,small] [--configs central,atc-ring,atc-exp,consensus-ring]
#       [--batch-large B] [--batch-small B] [--lr LR] [--schedule const|invsqrt]
#       [--samples N] [--probes P] [--analog] [--build DIR] [--keep]
#
# Configurations (one ohmpeer process per peer, real models over ZeroMQ on loopback):
#   central         complete graph, weights uniform (1/N), rule mean: with exact
#                   write-back and the common initialisation this is mini-batch
#                   SGD with global batch N*B (tests/test_peer_central.c)
#   atc-ring        diffusion, adapt-then-combine, ring, Metropolis weights
#   atc-exp         diffusion ATC on the exponential graph (i ~ i +- 2^k), Metropolis
#   consensus-ring  consensus (w <- sum_j a_ij w_j - mu g(w)) on the ring, Metropolis
# Regimes: large (batch --batch-large per peer, default 128) and small (--batch-small,
# default 16). Every run of the study sees the same number of training samples:
# the large regime runs R rounds (--rounds) and the small one R*B_large/B_small,
# with the same step-size schedule (--lr, --schedule) everywhere. Seeds 1..S set
# the initialisation and every peer's sampling (train.seed). Fashion-MNIST, iid
# split over the peers, MLP 784-128-10 (ReLU), digital SGD, exact write-back.
# --analog adds, for each regime, the same configurations with analog tiles:
# Tiki-Taka on softbounds devices (regime name "<regime>-analog").
#
# Measures per run:
#   test_acc        mean over the peers of each peer's own final model's accuracy
#                   on the whole test set (10000 images); min and max in the CSV
#   train_loss, hessian_trace, top_eigenvalue, sharpness
#                   `ohmpeer flatness` at the average of the peers' final models,
#                   on a seeded subset of --samples training images, --probes
#                   Hutchinson probes; sharpness = mean loss increase under random
#                   perturbations of norm 0.05*||w||
#   consensus_distance  (1/N) sum_i ||w_i - w_mean||^2 (0 for central)
# Outputs in DIR (default runs/flatness): results.csv (one row per run),
# table.md (mean +- std over seeds per configuration and regime),
# report-<regime>.html (ohm-report's comparison of the runs of each regime), and with
# gnuplot flatness.png (the measures per configuration) and tradeoff.png (test
# accuracy against Hessian trace and against train loss, one point per run).
# Each run keeps its metrics in DIR/runs/<regime>-<config>-s<seed>/ (checkpoints
# are removed once measured unless --keep); a run already measured there is not
# run again, so an interrupted study continues where it stopped.
# --quick: 8 peers, 150 large-batch rounds (1200 small-batch), 3 seeds,
# --samples 2000 --probes 10. Defaults otherwise: 16 peers, 400 rounds, 5
# seeds, --samples 10000 --probes 20.
# Each run (and each flatness measurement) holds flock /tmp/ohm-experiments.lock
# so experiments started by different people on one machine do not overlap.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ohm_init flatness

out=runs/flatness
peers=
rounds=
seeds=
samples=
probes=
quick=0
regimes=large,small
configs=central,atc-ring,atc-exp,consensus-ring
batch_large=128
batch_small=16
lr=0.2
schedule=const
analog=0
build=
keep=0
lock=/tmp/ohm-experiments.lock
cmdline="$*"

while [ $# -gt 0 ]; do
  case $1 in
  --out) ohm_need "$@"; out=$2; shift 2 ;;
  --peers) ohm_need "$@"; peers=$2; shift 2 ;;
  --rounds) ohm_need "$@"; rounds=$2; shift 2 ;;
  --seeds) ohm_need "$@"; seeds=$2; shift 2 ;;
  --samples) ohm_need "$@"; samples=$2; shift 2 ;;
  --probes) ohm_need "$@"; probes=$2; shift 2 ;;
  --regimes) ohm_need "$@"; regimes=$2; shift 2 ;;
  --configs) ohm_need "$@"; configs=$2; shift 2 ;;
  --batch-large) ohm_need "$@"; batch_large=$2; shift 2 ;;
  --batch-small) ohm_need "$@"; batch_small=$2; shift 2 ;;
  --lr) ohm_need "$@"; lr=$2; shift 2 ;;
  --schedule) ohm_need "$@"; schedule=$2; shift 2 ;;
  --build) ohm_need "$@"; build=$2; shift 2 ;;
  --analog) analog=1; shift ;;
  --keep) keep=1; shift ;;
  --quick) quick=1; shift ;;
  -h | --help) ohm_help ;;
  *) ohm_usage_error "unknown option '$1'" ;;
  esac
done
if [ "$quick" = 1 ]; then
  : "${peers:=8}" "${rounds:=150}" "${seeds:=3}" "${samples:=2000}" "${probes:=10}"
else
  : "${peers:=16}" "${rounds:=400}" "${seeds:=5}" "${samples:=10000}" "${probes:=20}"
fi
ohm_posint --peers "$peers"; ohm_posint --rounds "$rounds"; ohm_posint --seeds "$seeds"
ohm_posint --samples "$samples"; ohm_posint --probes "$probes"
ohm_posint --batch-large "$batch_large"; ohm_posint --batch-small "$batch_small"
[ "$peers" -ge 3 ] || ohm_usage_error "--peers must be at least 3 (a ring)"
if (( rounds * batch_large % batch_small )); then
  ohm_usage_error "--rounds * --batch-large must be a multiple of --batch-small (same samples)"
fi
case $schedule in const | invsqrt) ;; *) ohm_usage_error "--schedule is const or invsqrt" ;; esac
IFS=, read -r -a regime_list <<<"$regimes"
IFS=, read -r -a config_list <<<"$configs"
for r in "${regime_list[@]}"; do
  case $r in large | small) ;; *) ohm_usage_error "unknown regime '$r' (large, small)" ;; esac
done
for c in "${config_list[@]}"; do
  case $c in central | atc-ring | atc-exp | consensus-ring) ;;
  *) ohm_usage_error "unknown configuration '$c' (central, atc-ring, atc-exp, consensus-ring)" ;;
  esac
done

# The binaries: --build, else $OHM_BUILD, else the first build folder holding them.
ohm_build "$build" peer/ohmpeer topology/ohmtopo
ohmpeer=$OHMPEER
ohmtopo=$OHMTOPO
launch=$OHM_LAUNCH
command -v flock >/dev/null || ohm_die "flock (util-linux) is needed"
command -v python3 >/dev/null || ohm_die "python3 is needed"

mkdir -p "$out/runs"
out=$(cd "$out" && pwd)

# The study's base configuration; everything that varies is a --set per run.
cat >"$out/study.ini" <<EOF
# written by examples/flatness.sh
[data]
name = fashion-mnist
partition = iid
test_subset = 0

[model]
hidden = 128
activation = relu

[optimizer]
name = digital
lr = $lr
schedule = $schedule

[train]
checkpoint_every = 0

[aggregate]
writeback = exact

[net]
round_timeout_ms = 20000
EOF

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# One run: $1 regime, $2 config, $3 seed. Leaves row.json in the run folder.
one_run() {
  local regime=$1 config=$2 seed=$3
  local base=${regime%-analog} name="$1-$2-s$3" dir="$out/runs/$1-$2-s$3"
  [ -s "$dir/row.json" ] && { log "$name: measured before, kept"; return 0; }
  local batch r kind rule order weights=()
  if [ "$base" = large ]; then batch=$batch_large; r=$rounds; else batch=$batch_small; r=$((rounds * batch_large / batch_small)); fi
  case $config in
  central) kind=complete; weights=(--weights uniform); rule=mean; order=atc ;;
  atc-ring) kind=ring; rule=weighted; order=atc ;;
  atc-exp) kind=exp; rule=weighted; order=atc ;;
  consensus-ring) kind=ring; rule=weighted; order=consensus ;;
  esac
  local sets=(--set "optimizer.batch=$batch" --set "train.rounds=$r" --set "train.eval_every=$r"
    --set "train.seed=$seed" --set "aggregate.rule=$rule" --set "aggregate.order=$order")
  if [ "$regime" != "$base" ]; then
    sets+=(--set optimizer.name=tiki-taka --set device.response=softbounds --set device.tau=1
      --set device.dw_min=0.001 --set optimizer.gamma=0.1 --set optimizer.beta=0.1
      --set optimizer.transfer_columns=8)
  fi
  local attempt ok=0
  for attempt in 1 2; do
    rm -rf "$dir"
    mkdir -p "$dir"
    # A random loopback address and port, so runs never collide with other
    # programs' sockets (nor with a previous run's lingering ones).
    local host="127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))"
    local port=$((20000 + RANDOM % 30000))
    "$ohmtopo" gen "$kind" -n "$peers" --host "$host" --port "$port" "${weights[@]}" -o "$dir/graph.topo"
    log "$name: $kind, $order, rule $rule, batch $batch, $r rounds"
    if flock "$lock" "$launch" --topology "$dir/graph.topo" --config "$out/study.ini" "${sets[@]}" \
      --insecure --quiet --timeout 1800 --out "$dir" >"$dir/launch.log" 2>&1; then
      ok=1
      break
    fi
    log "$name: run failed (attempt $attempt), see $dir/launch.log:"
    tail -n 3 "$dir/launch.log" >&2 || true
  done
  [ "$ok" = 1 ] || { log "$name: giving up"; return 1; }
  local ck=() i
  for ((i = 0; i < peers; i++)); do ck+=(--checkpoint "$dir/peer-$i.ckpt"); done
  if ! flock "$lock" "$ohmpeer" flatness "${ck[@]}" --samples "$samples" --probes "$probes" \
    >"$dir/flatness.json" 2>"$dir/flatness.log"; then
    log "$name: flatness failed: $(tail -n 1 "$dir/flatness.log")"
    return 1
  fi
  python3 - "$dir" "$regime" "$config" "$seed" "$peers" "$batch" "$r" "$lr" "$schedule" "$order" \
    "$rule" "$kind" <<'EOF'
import json, os, sys
d, regime, config, seed, peers, batch, rounds, lr, schedule, order, rule, kind = sys.argv[1:]
s = json.load(open(os.path.join(d, "summary.json")))
f = json.load(open(os.path.join(d, "flatness.json")))
pe = f.get("peers", [])
mean = lambda k: sum(p[k] for p in pe) / len(pe) if pe else float("nan")
row = {
    "regime": regime, "config": config, "seed": int(seed), "graph": kind, "order": order,
    "rule": rule, "peers": int(peers), "batch": int(batch), "rounds": int(rounds),
    "samples_seen": int(peers) * int(batch) * int(rounds), "lr": float(lr), "schedule": schedule,
    "test_acc": s["honest_acc_mean"], "test_acc_min": s["honest_acc_min"],
    "test_acc_max": s["honest_acc_max"],
    "train_loss": f["train_loss"], "train_acc": f.get("train_acc"), "grad_norm": f["grad_norm"],
    "hessian_trace": f["hessian_trace"], "hessian_trace_se": f["hessian_trace_se"],
    "top_eigenvalue": f["top_eigenvalue"], "sharpness": f["sharpness"],
    "sharpness_se": f.get("sharpness_se"), "sharpness_radius": f.get("sharpness_radius"),
    "consensus_distance": f.get("consensus_distance", 0.0),
    "peer_train_loss_mean": mean("train_loss"), "peer_hessian_trace_mean": mean("hessian_trace"),
    "peer_top_eigenvalue_mean": mean("top_eigenvalue"),
    "flat_samples": f.get("samples"), "flat_probes": f.get("hessian_probes"),
    "wall_s": s.get("wall_s"), "round_ms_median": s.get("round_ms_median"),
}
tmp = os.path.join(d, "row.json.tmp")
with open(tmp, "w") as o:
    json.dump(row, o)
os.replace(tmp, os.path.join(d, "row.json"))
EOF
  if [ "$keep" = 0 ]; then rm -f "$dir"/peer-*.ckpt; fi
  log "$name: test acc $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.4f, trace %.1f, top eig %.2f, loss %.4f" % (r["test_acc"], r["hessian_trace"], r["top_eigenvalue"], r["train_loss"]))' "$dir/row.json")"
}

all_regimes=("${regime_list[@]}")
if [ "$analog" = 1 ]; then for r in "${regime_list[@]}"; do all_regimes+=("$r-analog"); done; fi
t0=$(date +%s)
failed=0
# Seeds outermost: a study stopped early still has every configuration for the
# first seeds.
for ((s = 1; s <= seeds; s++)); do
  for r in "${all_regimes[@]}"; do
    for c in "${config_list[@]}"; do
      one_run "$r" "$c" "$s" || failed=$((failed + 1))
    done
  done
done
log "runs done in $(($(date +%s) - t0)) s ($failed failed)"

# results.csv, table.md and the plot data from every measured run of this study.
python3 - "$out" "$regimes" "$configs" "$analog" "$seeds" "$cmdline" <<'EOF'
import csv, json, math, os, sys
out, regimes, configs, analog, nseeds, cmdline = sys.argv[1:]
regimes = regimes.split(",")
if analog == "1":
    regimes += [r + "-analog" for r in regimes]
configs = configs.split(",")
rows = []
for r in regimes:
    for c in configs:
        for s in range(1, int(nseeds) + 1):
            p = os.path.join(out, "runs", "%s-%s-s%d" % (r, c, s), "row.json")
            if os.path.exists(p):
                rows.append(json.load(open(p)))
if not rows:
    sys.exit("flatness: no run was measured")
keys = list(rows[0].keys())
with open(os.path.join(out, "results.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)

def stats(v):
    v = [x for x in v if x is not None and not math.isnan(x)]
    if not v:
        return float("nan"), float("nan"), 0
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, sd, len(v)

cols = [("test accuracy (%)", "test_acc", 100, "%.2f"), ("train loss", "train_loss", 1, "%.4f"),
        ("Hessian trace", "hessian_trace", 1, "%.1f"), ("top eigenvalue", "top_eigenvalue", 1, "%.2f"),
        ("sharpness (x1e-3)", "sharpness", 1e3, "%.3f"),
        ("consensus distance", "consensus_distance", 1, "%.2e")]
r0 = rows[0]
lines = ["| regime | configuration | seeds | " + " | ".join(c[0] for c in cols) + " |",
         "|---|---|---:|" + "---:|" * len(cols)]
summary = []
for r in regimes:
    for ci, c in enumerate(configs):
        sel = [x for x in rows if x["regime"] == r and x["config"] == c]
        if not sel:
            continue
        cells, rec = [], {"regime": r, "config": c, "ci": ci}
        for _, k, sc, fmt in cols:
            m, sd, n = stats([x[k] for x in sel])
            rec[k] = (m, sd)
            cells.append((fmt % (m * sc)) + " ± " + (fmt % (sd * sc)))
        summary.append(rec)
        label = "%s (B=%d, %d rounds)" % (r, sel[0]["batch"], sel[0]["rounds"])
        lines.append("| %s | %s | %d | %s |" % (label, c, len(sel), " | ".join(cells)))
head = ["# Flatness study", "",
        "`examples/flatness.sh %s`" % cmdline if cmdline else "`examples/flatness.sh`", "",
        "%d peers, Fashion-MNIST iid, MLP 784-128-10, lr %g (%s), every run %d training samples; "
        "mean ± std over seeds. Test accuracy: mean of the peers' own models on the 10000 test "
        "images. Train loss, Hessian trace, top eigenvalue, sharpness (loss increase at radius "
        "%g·‖w‖): at the peers' average model on %d training images, %d Hutchinson probes. "
        "Consensus distance: (1/N) Σ‖w_i − w̄‖²." % (
            r0["peers"], r0["lr"], r0["schedule"], r0["samples_seen"],
            r0["sharpness_radius"] or 0, r0["flat_samples"] or 0, r0["flat_probes"] or 0), ""]
open(os.path.join(out, "table.md"), "w").write("\n".join(head + lines) + "\n")
print("\n".join(lines))

# Plot data: one block per regime (gnuplot index), configurations on x.
with open(os.path.join(out, "plot-summary.dat"), "w") as f:
    for r in regimes:
        sel = [s for s in summary if s["regime"] == r]
        if not sel:
            continue
        f.write("# %s\n# ci config acc acc_sd trace trace_sd eig eig_sd sharp sharp_sd"
                " loss loss_sd cdist cdist_sd\n" % r)
        for s in sel:
            v = [s[k] for k in ("test_acc", "hessian_trace", "top_eigenvalue", "sharpness",
                                "train_loss", "consensus_distance")]
            f.write("%d %s %s\n" % (s["ci"], s["config"],
                                    " ".join("%.6g %.6g" % (m, sd) for m, sd in v)))
        f.write("\n\n")
with open(os.path.join(out, "plot-runs.dat"), "w") as f:
    for r in regimes:
        for c in configs:
            sel = [x for x in rows if x["regime"] == r and x["config"] == c]
            f.write("# %s %s\n# trace train_loss test_acc\n" % (r, c))
            for x in sel:
                f.write("%.6g %.6g %.6g\n" % (x["hessian_trace"], x["train_loss"], x["test_acc"]))
            if not sel:
                f.write("nan nan nan\n")
            f.write("\n\n")
with open(os.path.join(out, "plot-meta.gp"), "w") as f:
    f.write("regimes = \"%s\"\nconfigs = \"%s\"\n" % (" ".join(regimes), " ".join(configs)))
EOF

# Comparison reports: per regime, every configuration and seed side by side.
for r in "${all_regimes[@]}"; do
  dirs=() labels=()
  for c in "${config_list[@]}"; do
    for ((s = 1; s <= seeds; s++)); do
      d=$out/runs/$r-$c-s$s
      [ -f "$d/summary.json" ] && { dirs+=("$d"); labels+=(--label "$c s$s"); }
    done
  done
  [ ${#dirs[@]} -gt 0 ] || continue
  "$OHM_REPORT" "${dirs[@]}" "${labels[@]}" -o "$out/report-$r.html" >/dev/null ||
    log "ohm-report failed for $r: no $out/report-$r.html"
done

if ! command -v gnuplot >/dev/null; then
  log "gnuplot not found: no plots (results.csv and table.md are written)"
  exit $((failed > 0))
fi
(
  cd "$out"
  gnuplot <<'EOF'
load "plot-meta.gp"
nr = words(regimes); nc = words(configs)
set terminal pngcairo size 1500,900 font ",10"
set output "flatness.png"
set multiplot layout 2,3 title "decentralized vs centralized: mean ± std over seeds"
set xrange [-0.5:nc-0.5]
set xtics () ; do for [i=1:nc] { set xtics add (word(configs,i) i-1) }
set key top left
set grid y
off(k) = (k - (nr+1)/2.0) * 0.12
set ylabel "test accuracy"
plot for [k=1:nr] "plot-summary.dat" index (k-1) using ($1+off(k)):3:4 with yerrorlines title word(regimes,k)
set ylabel "Hessian trace"
plot for [k=1:nr] "plot-summary.dat" index (k-1) using ($1+off(k)):5:6 with yerrorlines title word(regimes,k)
set ylabel "top Hessian eigenvalue"
plot for [k=1:nr] "plot-summary.dat" index (k-1) using ($1+off(k)):7:8 with yerrorlines title word(regimes,k)
set ylabel "train loss (average model)"
plot for [k=1:nr] "plot-summary.dat" index (k-1) using ($1+off(k)):11:12 with yerrorlines title word(regimes,k)
set ylabel "sharpness (loss increase at 0.05 ||w||)"
plot for [k=1:nr] "plot-summary.dat" index (k-1) using ($1+off(k)):9:10 with yerrorlines title word(regimes,k)
set ylabel "consensus distance"
plot for [k=1:nr] "plot-summary.dat" index (k-1) using ($1+off(k)):13:14 with yerrorlines title word(regimes,k)
unset multiplot
set output "tradeoff.png"
set terminal pngcairo size 1400,500 font ",10"
set multiplot layout 1,2 title "one point per run: colour = configuration, symbol = regime"
set autoscale x
set xtics auto
set key outside right top
set ylabel "test accuracy"
set xlabel "Hessian trace"
plot for [k=1:nr] for [c=1:nc] "plot-runs.dat" index ((k-1)*nc + c-1) using 1:3 with points lc c pt (4+2*k) ps 1.5 title word(regimes,k)." ".word(configs,c)
set xlabel "train loss (average model)"
plot for [k=1:nr] for [c=1:nc] "plot-runs.dat" index ((k-1)*nc + c-1) using 2:3 with points lc c pt (4+2*k) ps 1.5 notitle
unset multiplot
EOF
) || log "gnuplot failed: no plots"
log "wrote $out/results.csv, $out/table.md and the plots"
exit $((failed > 0))
