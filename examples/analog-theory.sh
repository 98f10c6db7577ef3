#!/usr/bin/env bash
# Analog training theory on least squares (Wu et al., NeurIPS 2024/2025), the
# long version of tests/test_analog_theory.c: digital SGD, Analog SGD, Tiki-Taka
# and Residual Learning on a softbounds device (tau 3.5), in expected mode
# (decaying step) and with stochastic pulse trains (constant step). Writes into OUT_DIR (default runs/analog-theory):
#   analog-theory.csv  iteration,algorithm,error   (error = f(w) - f*)
#   summary.txt        predicted Analog SGD floor and each run's final errors
#   analog-theory.png  error vs iteration, log scale (needs gnuplot)
# Usage: examples/analog-theory.sh [OUT_DIR]
# Environment: ITERS (default 1000000), EVERY (5000), ANALOG_LSQ (the driver).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ohm_init analog-theory
case ${1:-} in -h | --help) ohm_help ;; -*) ohm_usage_error "unknown option '$1'" ;; esac
out=${1:-runs/analog-theory}
iters=${ITERS:-1000000}
every=${EVERY:-5000}

lsq=${ANALOG_LSQ:-}
if [ -z "$lsq" ]; then
  ohm_build "" examples/analog-lsq
  lsq=$OHM_BUILD/examples/analog-lsq
fi

mkdir -p "$out"
csv=$out/analog-theory.csv
summary=$out/summary.txt
# Late in the expected-mode runs alpha_k falls below beta and Tiki-Taka and
# Residual Learning level off near 2e-4 while digital SGD goes on: the fast
# array must stay faster than the transfer (two time scales, beta << alpha);
# a slower decay (analog-lsq --decay 50000) keeps them with digital SGD.
# Residual learning moves every cell of W each update; Tiki-Taka cycles through
# 10 of the 50 columns per update, so each cell is transferred every 5th update
# at 5x the rate: the same mean transfer, a different schedule.
tt=(--algos tiki-taka --transfer-columns 10 --beta 0.0005)
run() { "$lsq" --iters "$iters" --every "$every" "$@"; }
run --algos digital,analog-sgd,residual >"$csv" 2>"$summary"
run "${tt[@]}" --no-header >>"$csv" 2>>"$summary"
# Stochastic pulse trains run at a constant step: with the decaying one the
# pulses into P and A become so rare that they no longer correct the
# random whole-pulse transfers into W, and the error creeps up again (a
# granularity effect of dw_min, visible with --decay 5000).
st=(--update stochastic --tag /stochastic --lr 0.002 --decay 0 --no-header)
run "${st[@]}" --algos analog-sgd,residual >>"$csv" 2>>"$summary"
run "${st[@]}" "${tt[@]}" >>"$csv" 2>>"$summary"
cat "$summary"

floor=$(sed -n 's/^# predicted analog-sgd floor[^:]*: *//p' "$summary" | head -n 1)
if command -v gnuplot >/dev/null 2>&1; then
  gnuplot -e "csv='$csv'; png='$out/analog-theory.png'; floor=${floor:-0}" "$OHM_ROOT/examples/analog-theory.gp"
  echo "plot: $out/analog-theory.png"
else
  echo "gnuplot not found: skipping the plot (the CSV is $csv)"
fi
echo "csv: $csv"
