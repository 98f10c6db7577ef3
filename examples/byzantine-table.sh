#!/usr/bin/env bash
# Byzantine robustness table (the IOS paper's setting, docs/results/byzantine.md) with
# real peers: one ohmpeer process per peer, models over ZeroMQ with CURVE on
# loopback. Erdos-Renyi graph, 12 peers of which 2 Byzantine, p = 0.7,
# Fashion-MNIST, batch 32, step 0.9/sqrt(k+1); every rule against every attack,
# iid and non-iid (split by label), softmax regression and/or the MLP.
#
#   examples/byzantine-table.sh [--paper] [--rounds R] [--rules r1,r2,...] [--attacks a1,...]
#       [--partitions iid,label] [--model softmax|mlp|both] [--out DIR] [--quick]
#       [--b N|oracle] [--seed S] [--eval-every E] [--last K] [--port P] [--build DIR]
#       [--keep] [--table-only] [--set section.key=value]...
#   examples/byzantine-table.sh --compare DIR1 DIR2 [DIR...]
#
# Two settings:
# - standard (the default): ohmpeer's own start. Every peer starts from the
#   same small Glorot model, pixels in [0, 1], b = --b for every peer, the
#   label split cuts 12 label-sorted runs over all peers (data.partition=label),
#   the attacks use the Byzantine peer's own view; ER graph from ohmtopo gen
#   (--seed), "none" on the same graph with every peer honest and the same b.
# - --paper: the IOS authors' setting, as their code runs it: their graph
#   (examples/topologies/ios-er12-seed300.topo, Byzantine 6 and 7), each peer
#   its own N(0, 6^2) model (model.init=normal, init_sigma=6, init_per_peer),
#   pixels in [-1, 1] (data.scale=symmetric), weight decay 0.01, the label split
#   giving one class per honest peer and none to the Byzantine peers
#   (data.partition=label-honest), every attack with view=target (the target's
#   honest neighbours; exact isolation, duplicate redrawn per round, ALIE's z
#   of the paper), faba without the own model in its screening
#   (aggregate.faba_self=exclude), b = each peer's exact count of Byzantine
#   neighbours, and "none" on the honest subgraph (10 peers, their own
#   Metropolis weights, b = 0). Defaults: rules ios,faba,weighted,median,
#   trimmed-mean; attacks none,gaussian,signflip,isolation,duplicate,alie;
#   label split; 100 evaluations on 2500 test images (the last on all 10000);
#   --last 10. The authors run 50,000 iterations in float64; --rounds is ours.
#
# --last K reports the mean of each honest peer's last K evaluations (default
# 1: the final evaluation, on the full test set; --paper: 10, as the authors'
# tables). --keep skips the runs already in DIR/results.csv (to continue an
# interrupted table); --table-only rewrites DIR/table.md from DIR/results.csv
# and stops; --set passes a config key to every run (e.g. aggregate.tau=0, or
# optimizer.momentum=0.9, optimizer.variance_reduction=saga). --compare prints
# (and writes to DIR1/compare.md) the accuracy cells of several tables side by
# side, e.g. the standard and the faithful setting, or plain / momentum / SAGA.
#
# Writes DIR/results.csv (one line per run: model, partition, rule, attack,
# acc (%, the last-K mean over the honest peers), acc_final, acc_min, acc_max,
# setting, rounds, b, last, status, honest, byz_rows and byz_dropped (the
# Byzantine neighbours' models the honest peers' rule saw and dropped),
# discarded (all rows dropped), rss_max_kb, wall_s, dir) and DIR/table.md
# (rows = rule, columns = attack, one table per model and partition, and for
# the screening rules the share of the Byzantine models they dropped) and
# DIR/reports/<model>-<partition>-<attack>.html (ohm-report's comparison of the
# rules under that attack); each run's metrics stay in
# DIR/runs/<model>-<partition>-<rule>-<attack>/.
#
# Conventions (written down because they change the numbers):
# - standard "none" runs the same graph (same --seed: ohmtopo draws the edges
#   and the Byzantine placement from separate streams, so --byzantine 0 keeps
#   every edge) with the two would-be Byzantine peers running honest. Its
#   accuracy is the mean over the same 10 peers that are honest in the attacked
#   runs, and the rules keep the same b, so the column shows what tolerating b
#   costs.
# - b: --b N gives every peer aggregate.b = N (default 2, the number of
#   Byzantine peers: a configured bound); --b oracle writes each peer's own
#   count of Byzantine neighbours into the topology (b=<count> per peer, the
#   papers' oracle), the same counts for "none".
# - Attack parameters are the defaults of robust/ohm_attack.h (gaussian
#   sigma 30, ipm eps 0.1, alie z from n and f, duplicate copies one honest
#   neighbour; with --paper view=target).
# - Each run holds flock /tmp/ohm-experiments.lock, so experiments started by
#   different people on one machine do not overlap and distort each other.
# A run that fails is recorded with status "failed" and an empty accuracy; the
# table shows "fail" and the script goes on.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
helper=$here/byzantine_table.py

rounds=
rules=
attacks=
partitions=
model=softmax
out=runs/byzantine
bsel=
seed=1
eval_every=
last=
paper=0
compare=0
port=27600
build=
keep=0
quick=0
table_only=0
extra=()

usage() { sed -n '2,73p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
need() { [ $# -ge 2 ] || { echo "byzantine-table: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case $1 in
  --rounds) need "$@"; rounds=$2; shift 2 ;;
  --rules) need "$@"; rules=$2; shift 2 ;;
  --attacks) need "$@"; attacks=$2; shift 2 ;;
  --partitions) need "$@"; partitions=$2; shift 2 ;;
  --model) need "$@"; model=$2; shift 2 ;;
  --out) need "$@"; out=$2; shift 2 ;;
  --b) need "$@"; bsel=$2; shift 2 ;;
  --seed) need "$@"; seed=$2; shift 2 ;;
  --eval-every) need "$@"; eval_every=$2; shift 2 ;;
  --last) need "$@"; last=$2; shift 2 ;;
  --paper) paper=1; shift ;;
  --compare) compare=1; shift; break ;;
  --port) need "$@"; port=$2; shift 2 ;;
  --build) need "$@"; build=$2; shift 2 ;;
  --keep) keep=1; shift ;;
  --table-only) table_only=1; keep=1; shift ;;
  --set) need "$@"; extra+=(--set "$2"); shift 2 ;;
  --quick) quick=1; shift ;;
  -h | --help) usage 0 ;;
  *) echo "byzantine-table: unknown option '$1' (--help)" >&2; exit 2 ;;
  esac
done
if [ "$compare" = 1 ]; then
  [ $# -ge 2 ] || { echo "byzantine-table: --compare needs two or more table folders" >&2; exit 2; }
  for d in "$@"; do
    [ -f "$d/results.csv" ] || { echo "byzantine-table: $d/results.csv not found" >&2; exit 1; }
  done
  exec python3 "$helper" compare "$1/compare.md" "$@"
fi
if [ "$paper" = 1 ]; then
  [ -z "$bsel" ] || { echo "byzantine-table: --paper gives each peer its exact count of Byzantine neighbours; drop --b" >&2; exit 2; }
  : "${rounds:=3000}" "${rules:=ios,faba,weighted,median,trimmed-mean}"
  : "${attacks:=none,gaussian,signflip,isolation,duplicate,alie}" "${partitions:=label}" "${last:=10}"
  bsel=exact
else
  : "${rounds:=400}" "${rules:=weighted,mean,trimmed-mean,median,geomed,krum,faba,ios,cc,scc}"
  : "${attacks:=none,gaussian,signflip,isolation,duplicate,alie,ipm}" "${partitions:=iid,label}"
  : "${last:=1}" "${bsel:=2}"
fi
if [ "$quick" = 1 ]; then
  # A smoke run (about a minute): three rules, two attacks, iid, softmax.
  rounds=100 rules=weighted,median,ios attacks=none,signflip partitions=iid model=softmax
fi
case $model in
softmax) models=softmax ;; mlp) models=mlp ;; both) models="softmax mlp" ;;
*) echo "byzantine-table: --model must be softmax, mlp or both" >&2; exit 2 ;;
esac
case $bsel in
oracle | exact) ;; *[!0-9]* | '') echo "byzantine-table: --b must be a count or 'oracle'" >&2; exit 2 ;;
esac
[[ $rounds =~ ^[0-9]+$ ]] || { echo "byzantine-table: --rounds must be a count" >&2; exit 2; }
[[ $last =~ ^[1-9][0-9]*$ ]] || { echo "byzantine-table: --last must be a count >= 1" >&2; exit 2; }
if [ -z "$eval_every" ]; then
  if [ "$paper" = 1 ]; then eval_every=$((rounds / 100)); else eval_every=$(((rounds + 4) / 5)); fi
fi
[ "$eval_every" -ge 1 ] || eval_every=1
setting=standard
[ "$paper" = 1 ] && setting=paper

if [ -z "$build" ]; then
  build=$root/build
  [ -x "$build/peer/ohmpeer" ] || {
    echo "byzantine-table: building in $build" >&2
    [ -d "$build" ] || meson setup "$build" >/dev/null
    ninja -C "$build" peer/ohmpeer topology/ohmtopo >/dev/null
  }
fi
ohmtopo=$build/topology/ohmtopo
launch=$root/peer/ohm-launch
for x in "$ohmtopo" "$build/peer/ohmpeer"; do
  [ -x "$x" ] || { echo "byzantine-table: $x not found (build first, or --build DIR)" >&2; exit 1; }
done
export OHMPEER=$build/peer/ohmpeer

mkdir -p "$out/runs" "$out/topo"
csv=$out/results.csv
if [ "$keep" = 1 ] && [ -f "$csv" ]; then
  [ "$(head -n 1 "$csv")" = "$(python3 "$helper" header)" ] ||
    { echo "byzantine-table: $csv has another header (an older table?); use a new --out" >&2; exit 1; }
else
  python3 "$helper" header >"$csv"
fi

write_table() { python3 "$helper" table "$csv" "$rules" "$attacks" "$out/table.md"; }
if [ "$table_only" = 1 ]; then
  write_table
  cat "$out/table.md"
  exit 0
fi

IFS=, read -r -a rule_list <<<"$rules"
IFS=, read -r -a attack_list <<<"$attacks"
IFS=, read -r -a part_list <<<"$partitions"
total=$((${#rule_list[@]} * ${#attack_list[@]} * ${#part_list[@]} * $(wc -w <<<"$models")))
n=0
t_start=$(date +%s)
# The faithful setting's configuration (see the header).
paper_set=(--set data.scale=symmetric --set model.init=normal --set model.init_sigma=6
  --set model.init_per_peer=true --set optimizer.weight_decay=0.01
  --set aggregate.faba_self=exclude --set data.test_subset=2500)
for m in $models; do
  if [ "$m" = softmax ]; then hidden=0; else hidden=128; fi
  for part in "${part_list[@]}"; do
    dpart=$part
    [ "$paper" = 1 ] && [ "$part" = label ] && dpart=label-honest
    for attack in "${attack_list[@]}"; do
      # One topology per attack; the attacked graph fixes the honest ids.
      att_topo=$out/topo/er12-$attack.topo
      ref_topo=$out/topo/er12-ref.topo
      bset=()
      setx=()
      if [ "$paper" = 1 ]; then
        spec=$attack
        case $attack in gaussian* | signflip* | isolation* | duplicate* | alie* | ipm*)
          spec=$attack:view=target ;;
        esac
        [[ $attack == *:* ]] && spec=$attack,view=target
        [ "$attack" = none ] && spec=none
        python3 "$helper" paper-topo "$root/examples/topologies/ios-er12-seed300.topo" "$att_topo" \
          "$port" "$spec"
        ref_topo=$att_topo # "none" runs 10 honest peers: none is left out
        setx=("${paper_set[@]}")
      else
        "$ohmtopo" gen er -n 12 -p 0.7 --seed "$seed" --byzantine 2 --attack gaussian \
          --port "$port" -o "$ref_topo"
        if [ "$attack" = none ]; then
          "$ohmtopo" gen er -n 12 -p 0.7 --seed "$seed" --byzantine 0 --port "$port" -o "$att_topo"
          cmp -s <(grep '^edge' "$ref_topo") <(grep '^edge' "$att_topo") ||
            { echo "byzantine-table: ohmtopo drew other edges without Byzantine peers" >&2; exit 1; }
        else
          "$ohmtopo" gen er -n 12 -p 0.7 --seed "$seed" --byzantine 2 --attack "$attack" \
            --port "$port" -o "$att_topo"
        fi
        if [ "$bsel" = oracle ]; then
          python3 "$helper" oracle-b "$ref_topo" "$att_topo"
        else
          bset=(--set "aggregate.b=$bsel")
        fi
      fi
      for rule in "${rule_list[@]}"; do
        n=$((n + 1))
        name=$m-$part-$rule-$attack
        dir=$out/runs/$name
        if [ "$keep" = 1 ] && grep -q ",$dir\$" "$csv" 2>/dev/null; then continue; fi
        printf '[%d/%d] %-40s ' "$n" "$total" "$name"
        rm -rf "$dir"
        rc=0
        flock /tmp/ohm-experiments.lock "$launch" --topology "$att_topo" --out "$dir" --quiet \
          --timeout 1800 \
          --set data.name=fashion-mnist --set "data.partition=$dpart" \
          --set "model.hidden=$hidden" --set optimizer.name=digital \
          --set optimizer.lr=0.9 --set optimizer.schedule=invsqrt --set optimizer.batch=32 \
          --set "train.rounds=$rounds" --set "train.eval_every=$eval_every" \
          --set "train.seed=$seed" --set train.checkpoint_every=0 \
          --set "aggregate.rule=$rule" "${bset[@]}" "${setx[@]}" --set net.round_timeout_ms=5000 \
          "${extra[@]}" >"$dir.out" 2>&1 || rc=$?
        mv "$dir.out" "$dir/launch.out" 2>/dev/null || true
        line=$(python3 "$helper" collect "$dir" "$ref_topo" "$last" "$m" "$part" "$rule" \
          "$attack" "$setting" "$rounds" "$bsel")
        [ $rc = 0 ] || line=$(sed 's/,ok,/,failed,/' <<<"$line")
        echo "$line" >>"$csv"
        awk -F, '{ if ($13 == "ok") printf "honest acc %.2f%% (final %.2f%%, min %.2f%%)  %ss\n", $5, $6, $7, $19; else print "FAILED (see launch.out)" }' <<<"$line"
      done
    done
  done
done

write_table
# Comparison reports: per model, partition and attack, the rules side by side.
mkdir -p "$out/reports"
for m in $models; do
  for part in "${part_list[@]}"; do
    for attack in "${attack_list[@]}"; do
      dirs=() labels=()
      for rule in "${rule_list[@]}"; do
        d=$out/runs/$m-$part-$rule-$attack
        [ -f "$d/summary.json" ] && { dirs+=("$d"); labels+=(--label "$rule"); }
      done
      [ ${#dirs[@]} -gt 0 ] || continue
      "$build/peer/ohm-report" "${dirs[@]}" "${labels[@]}" -o "$out/reports/$m-$part-$attack.html" \
        >/dev/null || echo "byzantine-table: ohm-report failed for $m-$part-$attack" >&2
    done
  done
done
echo "results: $csv"
echo "table:   $out/table.md ($(($(date +%s) - t_start)) s)"
echo "reports: $out/reports/"
cat "$out/table.md"
