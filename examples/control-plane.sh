#!/usr/bin/env bash
# Control-plane attacks with real peers (docs/results/control-plane.md): the
# Byzantine table's graph and task (Erdos-Renyi, 12 peers of which 2
# Byzantine, p = 0.7, Fashion-MNIST softmax regression, iid, batch 32, step
# 0.9/sqrt(k+1), CURVE on loopback), with attackers that lie about rounds,
# replay old rounds, flood hellos, or go silent then burst, instead of
# crafting values. Each attack runs under the weighted rule at b = 0 (the
# catch-up quorum alone protects the peers) and under IOS at b = 2.
#
#   examples/control-plane.sh [--rounds R] [--attacks a1,a2,...] [--rules weighted:0,ios:2]
#       [--out DIR] [--seed S] [--port P] [--build DIR]
#
# Writes DIR/results.csv (rule, b, attack, honest accuracy, the most rounds any
# honest peer skipped, the most deadlines any honest peer waited out, the
# longest any honest peer held, wall time) and DIR/table.md.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ohm_init control-plane

rounds=300
attacks="none,roundlie,roundlie:nan=1,roundlie:shift=-100,stale:lag=10,hello-flood:count=200,mute-then-burst:mute=3,burst=6"
rules=weighted:0,ios:2
out=runs/control-plane
seed=1
port=29400
build=

while [ $# -gt 0 ]; do
  case $1 in
  --rounds) ohm_need "$@"; rounds=$2; shift 2 ;;
  --attacks) ohm_need "$@"; attacks=$2; shift 2 ;;
  --rules) ohm_need "$@"; rules=$2; shift 2 ;;
  --out) ohm_need "$@"; out=$2; shift 2 ;;
  --seed) ohm_need "$@"; seed=$2; shift 2 ;;
  --port) ohm_need "$@"; port=$2; shift 2 ;;
  --build) ohm_need "$@"; build=$2; shift 2 ;;
  -h | --help) ohm_help ;;
  *) ohm_usage_error "unknown option '$1'" ;;
  esac
done
ohm_posint --rounds "$rounds"
ohm_build "$build" peer/ohmpeer topology/ohmtopo
ohmtopo=$OHMTOPO
launch=$OHM_LAUNCH
mkdir -p "$out/topo" "$out/runs"
csv=$out/results.csv
echo "rule,b,attack,status,honest_acc_mean,max_skipped,max_timed_out,max_hold_s,wall_s" >"$csv"

# Attack specs hold commas (key=value lists): split the list at commas that
# start a new attack name, i.e. are not followed by key=value.
IFS=$'\n' read -r -d '' -a attack_list < <(python3 -c '
import re, sys
print("\n".join(re.split(r",(?=[a-z-]+(?:[:,]|$))", sys.argv[1])))' "$attacks") || true
IFS=, read -r -a rule_list <<<"$rules"

# Honest accuracy and the worst honest peer's skipped rounds, timed-out
# rounds and hold time, from the final metrics lines; the Byzantine peers are
# those the launcher's summary names (it asked ohmtopo).
collect() { # run-dir
  python3 - "$1" <<'EOF'
import json, os, sys
d = sys.argv[1]
acc, skipped, timed, hold = [], 0, 0, 0.0
s = json.load(open(os.path.join(d, "summary.json")))
byz = set(s["byzantine"])
for i in range(s["peers"]):
    if i in byz:
        continue
    last = None
    for line in open(os.path.join(d, "peer-%d.jsonl" % i)):
        j = json.loads(line)
        if j.get("final"):
            last = j
    if last is None:
        print("failed,,,,,%s" % s.get("wall_s", ""))
        sys.exit(0)
    acc.append(last["test_acc"])
    skipped = max(skipped, last["rounds_skipped"])
    timed = max(timed, last["rounds_timed_out"])
    hold = max(hold, last["hold_s"])
print("ok,%.4f,%d,%d,%.2f,%s" % (sum(acc) / len(acc), skipped, timed, hold, s["wall_s"]))
EOF
}

for rb in "${rule_list[@]}"; do
  rule=${rb%%:*}
  b=${rb#*:}
  for attack in "${attack_list[@]}"; do
    [ -n "$attack" ] || continue
    name=$rule-b$b-$(tr ':=,' '___' <<<"$attack")
    topo=$out/topo/$name.topo
    if [ "$attack" = none ]; then
      "$ohmtopo" gen er -n 12 -p 0.7 --seed "$seed" --byzantine 0 --port "$port" -o "$topo"
    else
      "$ohmtopo" gen er -n 12 -p 0.7 --seed "$seed" --byzantine 2 --attack "$attack" \
        --port "$port" -o "$topo"
    fi
    dir=$out/runs/$name
    rm -rf "$dir"
    printf '%-55s ' "$name"
    rc=0
    "$launch" --topology "$topo" --out "$dir" --quiet --timeout 3600 \
      --set data.name=fashion-mnist --set data.partition=iid --set model.hidden=0 \
      --set optimizer.lr=0.9 --set optimizer.schedule=invsqrt --set optimizer.batch=32 \
      --set "train.rounds=$rounds" --set "train.eval_every=$rounds" --set "train.seed=$seed" \
      --set train.checkpoint_every=0 --set "aggregate.rule=$rule" --set "aggregate.b=$b" \
      --set net.round_timeout_ms=2000 --set net.hwm=1024 >"$dir.out" 2>&1 || rc=$?
    mv "$dir.out" "$dir/launch.out" 2>/dev/null || true
    if [ "$rc" = 0 ]; then
      res=$(collect "$dir")
    else
      res="failed,,,,,"
    fi
    echo "$res"
    echo "$rule,$b,\"$attack\",$res" >>"$csv"
  done
done

python3 - "$csv" "$out/table.md" "$rounds" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
out = ["Control-plane attacks: Fashion-MNIST softmax, iid, ER(12, 0.7) with 2 Byzantine peers, "
       "%s rounds; honest mean test accuracy (%%), the most rounds any honest peer skipped, "
       "deadlines it waited out, seconds it held, and the run's wall time." % sys.argv[3], "",
       "| rule | b | attack | accuracy | skipped | timed out | held (s) | wall (s) |",
       "|---|---:|---|---:|---:|---:|---:|---:|"]
for r in rows:
    acc = "%.1f" % (100 * float(r["honest_acc_mean"])) if r["status"] == "ok" else "fail"
    out.append("| %s | %s | `%s` | %s | %s | %s | %s | %s |" % (
        r["rule"], r["b"], r["attack"], acc, r["max_skipped"], r["max_timed_out"],
        r["max_hold_s"], r["wall_s"]))
open(sys.argv[2], "w").write("\n".join(out) + "\n")
EOF
cat "$out/table.md"
