#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the demo experiment:
# 16 peers on a ring (real processes, ZeroMQ with CURVE on loopback) learning
# Fashion-MNIST with an MLP, then prints the summary table.
#   examples/demo.sh [OUT_DIR] [extra ohm-launch arguments, e.g. --set data.partition=dirichlet]
# Writes OUT_DIR/report.html (the run at a glance: docs/report.md), the
# summary and the gnuplot PNGs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ohm_init demo
case ${1:-} in -h | --help) ohm_help ;; esac
cd "$OHM_ROOT"
bash tests/install-deps.sh
if [ ! -x build/peer/ohmpeer ]; then
  meson setup build >/dev/null 2>&1 || meson setup --reconfigure build >/dev/null
fi
meson compile -C build >/dev/null
ohm_build build peer/ohmpeer topology/ohmtopo
out=${1:-runs/demo}
shift || true
mkdir -p "$out"
"$OHMTOPO" gen ring -n 16 --port 27100 -o "$out/ring16.topo"
"$OHM_LAUNCH" --topology "$out/ring16.topo" --config examples/configs/demo.ini \
  --out "$out" --plot --report "$@"
