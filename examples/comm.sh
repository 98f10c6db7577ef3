#!/usr/bin/env bash
# Fewer bytes per round: the demo (16 peers on a ring, Fashion-MNIST, MLP
# 784-128-10, CURVE on) with whole models, with compressed gossip and with
# censoring, each run into OUT/<name>, then one table of honest accuracy, bytes
# sent, censored share, median round time, largest peak RSS and wall time
# (docs/results/comm.md).
#   examples/comm.sh [OUT_DIR] [NAME...]   names: whole f16 q8 q8-raw q4 topk randk
#                                          censor-0.02 censor-0.05 censor-0.1 q8-censor
# (q8 with its default entropy stage, comm.entropy = deflate; q8-raw without)
# Environment: OHM_PEERS (16) and OHM_KIND (ring; e.g. exp) for another graph,
# OHM_SET="--set train.rounds=1000 ..." for every run, OHM_PORT (first port),
# OHM_BUILD (the build folder; default: the first that holds the tools).
# Each run of the demo takes about a minute on two idle cores; 256 peers on
# the exponential graph take seconds per round with whole models.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ohm_init comm
case ${1:-} in -h | --help) ohm_help ;; esac
cd "$OHM_ROOT"
ohm_build "" peer/ohmpeer topology/ohmtopo
out=${1:-runs/comm}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(whole f16 q8 q8-raw q4 topk randk censor-0.02 censor-0.05 censor-0.1 q8-censor)
mkdir -p "$out"
topo="$out/${OHM_KIND:-ring}${OHM_PEERS:-16}.topo"
port=()
[ -z "${OHM_PORT:-}" ] || port=(--port "$OHM_PORT")
"$OHMTOPO" gen "${OHM_KIND:-ring}" -n "${OHM_PEERS:-16}" "${port[@]}" -o "$topo"

settings() {
  case "$1" in
    whole) ;;
    f16 | q8 | q4 | topk | randk) echo "--set comm.compress=$1" ;;
    q8-raw) echo "--set comm.compress=q8 --set comm.entropy=none" ;;
    censor-*) echo "--set comm.censor=threshold --set comm.censor_tau0=${1#censor-}" ;;
    q8-censor) echo "--set comm.compress=q8 --set comm.censor=threshold --set comm.censor_tau0=0.05" ;;
    *) echo "unknown run '$1'" >&2; return 1 ;;
  esac
}

for n in "${names[@]}"; do
  s=$(settings "$n")
  echo "== $n: $s ${OHM_SET:-} (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  # shellcheck disable=SC2086
  "$OHM_LAUNCH" --topology "$topo" --config examples/configs/demo.ini \
    --out "$out/$n" --quiet $s ${OHM_SET:-} >"$out/$n.log" 2>&1 || {
    echo "run $n failed; see $out/$n.log" >&2
    exit 1
  }
done

python3 - "$out" "${names[@]}" <<'PY'
import glob, json, os, statistics, sys
out, names = sys.argv[1], sys.argv[2:]
def finals(d):
    for path in sorted(glob.glob(os.path.join(d, "peer-*.jsonl"))):
        lines = [json.loads(l) for l in open(path) if '"final":true' in l]
        if lines:
            yield lines[-1]
rows, base = [], None
for n in names:
    f = list(finals(os.path.join(out, n)))
    acc = [x["test_acc"] for x in f if not x.get("byzantine")]
    sent = sum(x["bytes_sent"] for x in f)
    rounds = sum(x.get("comm", {}).get("rounds", x["round"]) for x in f)
    cens = sum(x.get("comm", {}).get("censored", 0) for x in f)
    wall = max(x["wall_s"] for x in f)
    rmed = statistics.median(x["round_ms_median"] for x in f)
    rss = max(x["rss_max_kb"] for x in f) / 1024.0
    if base is None:
        base = sent
    rows.append((n, sum(acc) / len(acc), min(acc), max(acc), sent, base / sent,
                 cens / rounds if rounds else 0, rmed, rss, wall, f[0]["round"]))
print("| run | rounds | honest accuracy mean (min-max) | bytes sent | fewer bytes | censored "
      "| round median | RSS max | wall |")
print("|---|---|---|---|---|---|---|---|---|")
for n, m, lo, hi, sent, ratio, c, rmed, rss, wall, r in rows:
    print("| %s | %d | %.4f (%.4f-%.4f) | %.3g | %.1fx | %.1f%% | %.0f ms | %.1f MB | %.0f s |"
          % (n, r, m, lo, hi, sent, ratio, 100 * c, rmed, rss, wall))
PY
