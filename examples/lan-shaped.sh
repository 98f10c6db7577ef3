#!/usr/bin/env bash
# A bandwidth-limited LAN, emulated on one machine: OHM_HOSTS network
# namespaces (the hosts) joined by veth pairs to a bridge (the switch), every
# link shaped both ways to OHM_RATE (tc: netem with OHM_DELAY where the kernel
# has it, else a token bucket without delay), OHM_PEERS peers placed
# round-robin on them with CURVE on, the demo's model and data. Each named run
# (whole models, compressed gossip, censoring) goes to OUT/<name>; then one
# table: wall time until the honest peers' mean accuracy (on the evaluation
# subset) first reaches OHM_TARGET, final accuracy, bytes sent.
#   sudo examples/lan-shaped.sh [OUT_DIR] [NAME...]
#   names: whole q8 q8-raw q4 topk censor q8-censor (default: whole q8 topk censor)
#   (q8 with its default entropy stage, comm.entropy = deflate; q8-raw without)
#   environment: OHM_PEERS (8; 6-16 make sense), OHM_HOSTS (4), OHM_KIND (ring),
#     OHM_RATE (100mbit), OHM_DELAY (0.5ms), OHM_ROUNDS (1500), OHM_EVAL (50),
#     OHM_TARGET (0.82), OHM_SET (extra --set options for every run), OHM_BUILD,
#     OHM_REPORT_ONLY=1 (no runs: the table and the figure again from OUT)
# Writes OUT/<name>.curve (mean accuracy against wall time) and, with gnuplot,
# OUT/accuracy-vs-time.svg.
# Needs root (network namespaces, tc), iproute2, and the build (made if missing).
# Everything it creates is named after its pid and removed on exit.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ohm_init lan-shaped
case ${1:-} in -h | --help) ohm_help ;; esac
cd "$OHM_ROOT"
ohm_build "" peer/ohmpeer topology/ohmtopo
ohmpeer=$OHMPEER
ohmtopo=$OHMTOPO

out=${1:-runs/lan-shaped}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(whole q8 topk censor)
N=${OHM_PEERS:-8}
H=${OHM_HOSTS:-4}
RATE=${OHM_RATE:-100mbit}
DELAY=${OHM_DELAY:-0.5ms}
ROUNDS=${OHM_ROUNDS:-1500}
EVAL=${OHM_EVAL:-50}
TARGET=${OHM_TARGET:-0.82}
KIND=${OHM_KIND:-ring}
mkdir -p "$out"
out=$(realpath "$out")

# The table, and OUT/<name>.curve (mean accuracy against wall time) for each
# run, plotted into OUT/accuracy-vs-time.svg where gnuplot is installed.
report() {
python3 - "$out" "$TARGET" "$(cat "$out/links.txt")" "${names[@]}" <<'PY'
import glob, json, os, sys
out, target, shaped, names = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]
print("links: %s" % shaped)
print("| run | wall to mean accuracy %.2f | round | final accuracy | bytes sent | wall |" % target)
print("|---|---|---|---|---|---|")
for n in names:
    by_round, finals = {}, []
    for path in glob.glob(os.path.join(out, n, "peer-*.jsonl")):
        for line in open(path):
            x = json.loads(line)
            if x.get("final"):
                finals.append(x)
            elif "test_acc" in x:
                by_round.setdefault(x["round"], []).append(x)
    hit = None
    for r in sorted(by_round):
        xs = by_round[r]
        if len(xs) == len(finals) and sum(x["test_acc"] for x in xs) / len(xs) >= target:
            hit = (max(x["wall_s"] for x in xs), r)
            break
    with open(os.path.join(out, n + ".curve"), "w") as f:
        f.write("# wall_s mean_accuracy (evaluation subset), every evaluated round\n")
        for r in sorted(by_round):
            xs = by_round[r]
            if len(xs) == len(finals):
                f.write("%.3f %.4f\n" % (max(x["wall_s"] for x in xs),
                                         sum(x["test_acc"] for x in xs) / len(xs)))
    acc = sum(x["test_acc"] for x in finals) / len(finals)
    print("| %s | %s | %s | %.4f | %.3g | %.0f s |" % (
        n, "%.0f s" % hit[0] if hit else "not reached", hit[1] if hit else "-", acc,
        sum(x["bytes_sent"] for x in finals), max(x["wall_s"] for x in finals)))
PY
  command -v gnuplot >/dev/null || return 0
  local plot="set terminal svg size 720,420 dynamic; set output '$out/accuracy-vs-time.svg';"
  plot+=" set xlabel 'wall time (s, log scale)'; set ylabel 'honest mean accuracy (evaluation subset)';"
  plot+=" set key bottom right; set grid; set yrange [0.5:0.9]; set logscale x;"
  plot+=" set title 'ring of $N peers, $(cat "$out/links.txt")';"
  plot+=" plot"
  local n sep=""
  for n in "${names[@]}"; do
    plot+="$sep '$out/$n.curve' using 1:2 with linespoints title '$n'"
    sep=","
  done
  gnuplot -e "$plot"
}
if [ "${OHM_REPORT_ONLY:-}" = 1 ]; then
  report
  exit 0
fi

# ---- the network ----------------------------------------------------------
[ "$(id -u)" -eq 0 ] || ohm_usage_error "needs root (ip netns, tc)"
command -v ip >/dev/null && command -v tc >/dev/null || ohm_die "needs ip and tc (Debian: iproute2)"
tag=ohmshape$$
sw=${tag}sw
sub=$(($$ % 250 + 1))
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for ((h = 0; h < H; h++)); do ip netns del "${tag}h$h" 2>/dev/null || true; done
  ip netns del "$sw" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$sw"
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
shaped_by=""
shape() { # NS DEV: egress of DEV shaped
  if tc -n "$1" qdisc replace dev "$2" root netem delay "$DELAY" rate "$RATE" limit 100000 \
    2>/dev/null; then
    shaped_by="netem: $RATE, $DELAY delay"
  else
    tc -n "$1" qdisc replace dev "$2" root tbf rate "$RATE" burst 256kb limit 16mb
    shaped_by="tbf: $RATE, no delay (this kernel has no netem)"
  fi
}
: >"$out/hosts.txt"
for ((h = 0; h < H; h++)); do
  ns=${tag}h$h
  ip netns add "$ns"
  ip -n "$sw" link add "p$h" type veth peer name eth0 netns "$ns"
  ip -n "$sw" link set "p$h" master br0
  ip -n "$sw" link set "p$h" up
  ip -n "$ns" addr add "10.78.$sub.$((h + 1))/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  shape "$ns" eth0
  shape "$sw" "p$h"
  echo "10.78.$sub.$((h + 1))" >>"$out/hosts.txt"
done
echo "$shaped_by" >"$out/links.txt"
echo "links: $shaped_by; $N peers on $H hosts ($KIND), $ROUNDS rounds, target $TARGET"

# ---- topology and keys ----------------------------------------------------
"$ohmtopo" gen "$KIND" -n "$N" --hosts "$out/hosts.txt" --port 7300 -o "$out/plain.topo"
mkdir -p "$out/keys"
chmod 700 "$out/keys"
for ((i = 0; i < N; i++)); do
  [ -f "$out/keys/peer-$i.key" ] || "$ohmpeer" keygen --out "$out/keys/peer-$i" >/dev/null 2>&1
done
"$ohmtopo" edit "$out/plain.topo" --keys "$out/keys" -o "$out/lan.topo"

settings() {
  case "$1" in
    whole) ;;
    q8 | q4 | topk | f16 | randk) echo "--set comm.compress=$1" ;;
    q8-raw) echo "--set comm.compress=q8 --set comm.entropy=none" ;;
    censor) echo "--set comm.censor=threshold --set comm.censor_tau0=0.05" ;;
    q8-censor) echo "--set comm.compress=q8 --set comm.censor=threshold --set comm.censor_tau0=0.05" ;;
    *) echo "unknown run '$1'" >&2; return 1 ;;
  esac
}

for n in "${names[@]}"; do
  s=$(settings "$n")
  rm -rf "${out:?}/$n"
  mkdir -p "$out/$n"
  echo "== $n: $s ${OHM_SET:-} (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  pids=()
  for ((i = 0; i < N; i++)); do
    # shellcheck disable=SC2086
    ip netns exec "${tag}h$((i % H))" "$ohmpeer" run --topology "$out/lan.topo" --id "$i" \
      --out "$out/$n" --config examples/configs/demo.ini --set "train.rounds=$ROUNDS" \
      --set "train.eval_every=$EVAL" --set train.checkpoint_every=0 \
      --set net.round_timeout_ms=20000 $s ${OHM_SET:-} >"$out/$n/peer-$i.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { echo "a peer of $n failed; see $out/$n" >&2; exit 1; }; done
  pids=()
done

report
