#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the demo experiment:
# 16 peers on a ring (real processes, ZeroMQ with CURVE on loopback) learning
# Fashion-MNIST with an MLP, then prints the summary table.
#   examples/demo.sh [OUT_DIR] [extra ohm-launch arguments, e.g. --set data.partition=dirichlet]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh
if [ ! -x build/peer/ohmpeer ]; then
  meson setup build >/dev/null 2>&1 || meson setup --reconfigure build >/dev/null
fi
meson compile -C build >/dev/null
out=${1:-runs/demo}
shift || true
mkdir -p "$out"
./build/topology/ohmtopo gen ring -n 16 --port 27100 -o "$out/ring16.topo"
./build/peer/ohm-launch --topology "$out/ring16.topo" --config examples/configs/demo.ini \
  --out "$out" --plot "$@"
