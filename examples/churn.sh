#!/usr/bin/env bash
# Peers that join late and leave early (docs/results/async.md): the 16-peer
# ring of the demo (Fashion-MNIST, MLP 784-128-10, batch 32, iid, CURVE on
# loopback), in train.mode = sync and async. For each mode three runs:
#   base   every peer from the start to the end;
#   join   peer JOIN starts after a third of the base run's wall time
#          (--join: it starts from the coordinate-wise median of its
#          neighbours' models, train.join);
#   leave  peer LEAVE says bye at half the rounds (--leave, train.leave_at).
# The table gives the joiner's final accuracy against the mean of the others,
# and the mean of the peers that stayed against the same peers in the base run.
#
#   examples/churn.sh [--rounds R] [--join PEER] [--leave PEER] [--modes sync,async]
#       [--out DIR] [--port P] [--build DIR] [--set section.key=value]...
#
# Writes DIR/results.csv and DIR/table.md; each run's folder stays in DIR/runs/.
# Each run holds flock on $OHM_EXPERIMENT_LOCK (default /tmp/ohm-experiments.lock)
# and runs under nice 5; the csv records the 1-minute load average before and
# after each run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ohm_init churn

rounds=3000
joiner=3
leaver=6
modes=sync,async
out=runs/churn
port=29700
build=
extra=()

while [ $# -gt 0 ]; do
  case $1 in
  --rounds) ohm_need "$@"; ohm_posint "$1" "$2"; rounds=$2; shift 2 ;;
  --join) ohm_need "$@"; ohm_posint "$1" "$2"; joiner=$2; shift 2 ;;
  --leave) ohm_need "$@"; ohm_posint "$1" "$2"; leaver=$2; shift 2 ;;
  --modes) ohm_need "$@"; modes=$2; shift 2 ;;
  --out) ohm_need "$@"; out=$2; shift 2 ;;
  --port) ohm_need "$@"; ohm_posint "$1" "$2"; port=$2; shift 2 ;;
  --build) ohm_need "$@"; build=$2; shift 2 ;;
  --set) ohm_need "$@"; extra+=(--set "$2"); shift 2 ;;
  -h | --help) ohm_help ;;
  *) ohm_usage_error "unknown option '$1'" ;;
  esac
done
[ "$joiner" -lt 16 ] && [ "$leaver" -lt 16 ] && [ "$joiner" != "$leaver" ] ||
  ohm_usage_error "--join and --leave name two different peers of 0..15"
ohm_build "$build" peer/ohmpeer topology/ohmtopo

mkdir -p "$out/runs"
topo=$out/ring16.topo
"$OHMTOPO" gen ring -n 16 --port "$port" -o "$topo" >/dev/null
csv=$out/results.csv
echo "mode,run,wall_s,status,load_before,load_after" >"$csv"

# run MODE NAME [launcher options...]: one run, recorded in the csv.
run() {
  local mode=$1 name=$2 dir=$out/runs/$1-$2 rc=0 l0 l1
  shift 2
  rm -rf "$dir"
  printf '%-16s ' "$mode-$name"
  ohm_lock
  l0=$(ohm_load)
  nice -n 5 "$OHM_LAUNCH" --topology "$topo" --out "$dir" --quiet --timeout 3600 \
    --config "$OHM_ROOT/examples/configs/demo.ini" --set "train.mode=$mode" \
    --set "train.rounds=$rounds" --set train.checkpoint_every=0 "$@" "${extra[@]}" \
    >"$dir.out" 2>&1 || rc=$?
  l1=$(ohm_load)
  ohm_unlock
  mv "$dir.out" "$dir/launch.out" 2>/dev/null || true
  local wall
  wall=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("wall_s",""))' \
    "$dir/summary.json" 2>/dev/null || true)
  echo "wall ${wall:-?} s, exit $rc (load $l0 -> $l1)"
  echo "$mode,$name,$wall,$([ $rc = 0 ] && echo ok || echo failed),$l0,$l1" >>"$csv"
}

IFS=, read -r -a mode_list <<<"$modes"
for mode in "${mode_list[@]}"; do
  run "$mode" base
  base_wall=$(awk -F, -v m="$mode" '$1 == m && $2 == "base" {print $3}' "$csv")
  at=$(python3 -c 'import sys; print("%.1f" % (float(sys.argv[1] or 60) / 3))' "$base_wall")
  run "$mode" join --join "$joiner@$at"
  run "$mode" leave --leave "$leaver@$((rounds / 2))"
done

python3 - "$out" "$modes" "$joiner" "$leaver" "$rounds" <<'EOF'
import json, sys
out, modes, joiner, leaver, rounds = sys.argv[1], sys.argv[2].split(","), *sys.argv[3:]
def final(mode, run):
    try:
        s = json.load(open("%s/runs/%s-%s/summary.json" % (out, mode, run)))
    except (OSError, ValueError):
        return None
    return {int(k): v for k, v in s["final_acc"].items() if v is not None}
def mean(d, skip):
    v = [a for k, a in d.items() if k not in skip]
    return sum(v) / len(v) if v else float("nan")
lines = ["16-peer ring, Fashion-MNIST demo config, %s rounds; final test accuracy (%%). "
         "join: peer %s starts after a third of the base run's wall time; leave: peer %s "
         "leaves at round %d." % (rounds, joiner, leaver, int(rounds) // 2), "",
         "| mode | base: all | join: joiner | join: the others | joiner - others | "
         "leave: those who stayed | base: the same peers | stayed - base |",
         "|---|---:|---:|---:|---:|---:|---:|---:|"]
j, l = int(joiner), int(leaver)
for m in modes:
    b, jn, lv = final(m, "base"), final(m, "join"), final(m, "leave")
    cells = [m]
    cells.append("%.2f" % (100 * mean(b, ())) if b else "fail")
    if jn and j in jn:
        cells += ["%.2f" % (100 * jn[j]), "%.2f" % (100 * mean(jn, (j,))),
                  "%+.2f" % (100 * (jn[j] - mean(jn, (j,))))]
    else:
        cells += ["fail"] * 3
    if lv and b:
        cells += ["%.2f" % (100 * mean(lv, (l,))), "%.2f" % (100 * mean(b, (l,))),
                  "%+.2f" % (100 * (mean(lv, (l,)) - mean(b, (l,))))]
    else:
        cells += ["fail"] * 3
    lines.append("| " + " | ".join(cells) + " |")
open(out + "/table.md", "w").write("\n".join(lines) + "\n")
EOF
cat "$out/table.md"
