#!/usr/bin/env bash
# Byzantine robustness table (the IOS paper's setting, docs/results/byzantine.md) with
# real peers: one ohmpeer process per peer, models over ZeroMQ with CURVE on
# loopback. Erdos-Renyi graph, 12 peers of which 2 Byzantine, p = 0.7,
# Fashion-MNIST, batch 32, step 0.9/sqrt(k+1); every rule against every attack,
# iid and non-iid (split by label), softmax regression and/or the MLP.
#
#   examples/byzantine-table.sh [--rounds R] [--rules r1,r2,...] [--attacks a1,...]
#       [--partitions iid,label] [--model softmax|mlp|both] [--out DIR] [--quick]
#       [--b N|oracle] [--seed S] [--eval-every E] [--port P] [--build DIR] [--keep]
#       [--table-only] [--set section.key=value]...
#
# --keep skips the runs already in DIR/results.csv (to continue an interrupted
# table); --table-only rewrites DIR/table.md from DIR/results.csv and stops;
# --set passes a config key to every run (e.g. aggregate.tau=0: adaptive
# clipping radius for cc/scc instead of the fixed default 1).
#
# Writes DIR/results.csv (one line per run), DIR/table.md (final honest mean
# test accuracy in %, rows = rule, columns = attack, one table per model and
# partition) and DIR/reports/<model>-<partition>-<attack>.html (ohm-report's
# comparison of the rules under that attack); each run's metrics stay in
# DIR/runs/<model>-<partition>-<rule>-<attack>/.
#
# Conventions (written down because they change the numbers):
# - "none" runs the same graph (same --seed: ohmtopo draws the edges and the
#   Byzantine placement from separate streams, so --byzantine 0 keeps every
#   edge) with the two would-be Byzantine peers running honest. Its accuracy is
#   the mean over the same 10 peers that are honest in the attacked runs, and
#   the rules keep the same b, so the column shows what tolerating b costs.
# - b: --b N gives every peer aggregate.b = N (default 2, the number of
#   Byzantine peers: a configured bound); --b oracle writes each peer's own
#   count of Byzantine neighbours into the topology (b=<count> per peer, the
#   papers' oracle), the same counts for "none".
# - Attack parameters are the defaults of robust/ohm_attack.h (gaussian
#   sigma 30, ipm eps 0.1, alie z from n and f, duplicate copies one honest
#   neighbour).
# - Each run holds flock /tmp/ohm-experiments.lock, so experiments started by
#   different people on one machine do not overlap and distort each other.
# A run that fails is recorded with status "failed" and an empty accuracy; the
# table shows "fail" and the script goes on.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

rounds=400
rules=weighted,mean,trimmed-mean,median,geomed,krum,faba,ios,cc,scc
attacks=none,gaussian,signflip,isolation,duplicate,alie,ipm
partitions=iid,label
model=softmax
out=runs/byzantine
bsel=2
seed=1
eval_every=
port=27600
build=
keep=0
quick=0
table_only=0
extra=()

usage() { sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
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
if [ "$quick" = 1 ]; then
  # A smoke run (about a minute): three rules, two attacks, iid, softmax.
  rounds=100 rules=weighted,median,ios attacks=none,signflip partitions=iid model=softmax
fi
case $model in
softmax) models=softmax ;; mlp) models=mlp ;; both) models="softmax mlp" ;;
*) echo "byzantine-table: --model must be softmax, mlp or both" >&2; exit 2 ;;
esac
case $bsel in
oracle) ;; *[!0-9]* | '') echo "byzantine-table: --b must be a count or 'oracle'" >&2; exit 2 ;;
esac
[[ $rounds =~ ^[0-9]+$ ]] || { echo "byzantine-table: --rounds must be a count" >&2; exit 2; }
[ -n "$eval_every" ] || eval_every=$(((rounds + 4) / 5))
[ "$eval_every" -ge 1 ] || eval_every=1

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
[ "$keep" = 1 ] && [ -f "$csv" ] ||
  echo "model,partition,rule,attack,rounds,b,status,honest_acc_mean,honest_acc_min,honest_acc_max,wall_s,dir" >"$csv"

# Per-peer oracle b: every peer line gets b=<number of its Byzantine neighbours
# in the attacked graph>; the same for the honest "none" graph.
oracle_b() { # attacked-topology file-to-edit
  python3 - "$1" "$2" <<'EOF'
import re, sys
att, dst = sys.argv[1], sys.argv[2]
byz, nb = set(), {}
for line in open(att):
    t = line.split("#", 1)[0].split()
    if len(t) >= 2 and t[0] == "peer" and "role=byzantine" in t:
        byz.add(int(t[1]))
    if len(t) >= 3 and t[0] == "edge":
        i, j = int(t[1]), int(t[2])
        nb.setdefault(i, set()).add(j)
        nb.setdefault(j, set()).add(i)
lines = []
for line in open(dst):
    t = line.split("#", 1)[0].split()
    if len(t) >= 2 and t[0] == "peer":
        line = line.rstrip("\n") + " b=%d\n" % len(nb.get(int(t[1]), set()) & byz)
    lines.append(line)
open(dst, "w").writelines(lines)
EOF
}

# Mean, min and max final accuracy over the peers that are honest in the
# attacked graph (for "none" the two would-be Byzantine peers are left out).
collect() { # summary.json attacked-topology
  python3 - "$1" "$2" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
byz = set()
for line in open(sys.argv[2]):
    t = line.split("#", 1)[0].split()
    if len(t) >= 2 and t[0] == "peer" and "role=byzantine" in t:
        byz.add(t[1])
acc = [v for k, v in s.get("final_acc", {}).items() if k not in byz]
if len(acc) != s["peers"] - len(byz):
    print("failed,,,,%s" % s.get("wall_s", ""))
else:
    print("ok,%.4f,%.4f,%.4f,%s" % (sum(acc) / len(acc), min(acc), max(acc), s["wall_s"]))
EOF
}

# The tables: one per model and partition, rules as rows, attacks as columns,
# in the order asked for.
write_table() {
  python3 - "$csv" "$rules" "$attacks" "$out/table.md" <<'EOF'
import csv, sys
path, rules, attacks, dst = sys.argv[1:5]
rules, attacks = rules.split(","), attacks.split(",")
cells, groups, rounds, bs = {}, [], [], []
for r in csv.DictReader(open(path)):
    g = (r["model"], r["partition"])
    if g not in groups:
        groups.append(g)
    for have, v in ((rounds, r["rounds"]), (bs, r["b"])):
        if v not in have:
            have.append(v)
    v = r["honest_acc_mean"]
    cells[g + (r["rule"], r["attack"])] = "%.1f" % (100 * float(v)) if r["status"] == "ok" and v else "fail"
part_name = {"iid": "iid", "label": "non-iid (split by label)", "dirichlet": "Dirichlet"}
out = ["Final honest mean test accuracy (%%), Fashion-MNIST, ER(12, 0.7) with 2 Byzantine "
       "peers, %s rounds, batch 32, step 0.9/sqrt(k+1), b = %s." % ("/".join(rounds), "/".join(bs)), ""]
for g in groups:
    model = "softmax regression" if g[0] == "softmax" else "MLP 784-128-10"
    out += ["### %s, %s" % (model, part_name.get(g[1], g[1])), "",
            "| rule | " + " | ".join(attacks) + " |",
            "|---|" + "---:|" * len(attacks)]
    for rule in rules:
        out.append("| %s | " % rule + " | ".join(cells.get(g + (rule, a), "") for a in attacks) + " |")
    out.append("")
open(dst, "w").write("\n".join(out))
EOF
}
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
for m in $models; do
  if [ "$m" = softmax ]; then hidden=0; else hidden=128; fi
  for part in "${part_list[@]}"; do
    for attack in "${attack_list[@]}"; do
      # One topology per attack; the attacked graph fixes the honest ids.
      att_topo=$out/topo/er12-$attack.topo
      ref_topo=$out/topo/er12-ref.topo
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
      bset=()
      if [ "$bsel" = oracle ]; then oracle_b "$ref_topo" "$att_topo"; else bset=(--set "aggregate.b=$bsel"); fi
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
          --set data.name=fashion-mnist --set "data.partition=$part" \
          --set "model.hidden=$hidden" --set optimizer.name=digital \
          --set optimizer.lr=0.9 --set optimizer.schedule=invsqrt --set optimizer.batch=32 \
          --set "train.rounds=$rounds" --set "train.eval_every=$eval_every" \
          --set "train.seed=$seed" --set train.checkpoint_every=0 \
          --set "aggregate.rule=$rule" "${bset[@]}" --set net.round_timeout_ms=5000 \
          "${extra[@]}" >"$dir.out" 2>&1 || rc=$?
        mv "$dir.out" "$dir/launch.out" 2>/dev/null || true
        if [ $rc = 0 ] && [ -f "$dir/summary.json" ]; then
          res=$(collect "$dir/summary.json" "$out/topo/er12-ref.topo")
        else
          res="failed,,,,"
        fi
        echo "$m,$part,$rule,$attack,$rounds,$bsel,$res,$dir" >>"$csv"
        echo "$res" | awk -F, '{ if ($1 == "ok") printf "honest acc %.2f%% (min %.2f%%)  %ss\n", 100*$2, 100*$3, $5; else print "FAILED (see launch.out)" }'
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
