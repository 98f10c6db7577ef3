#!/usr/bin/env bash
# The test command: installs what is missing, builds from scratch, runs the whole suite.
#   tests/run.sh              release build in build/, every Criterion suite
#   tests/run.sh --sanitize   the same with AddressSanitizer + UndefinedBehaviorSanitizer in build-san/
#   tests/run.sh --fuzz SEC   builds the libFuzzer targets with clang and runs each for SEC seconds
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh
mode=${1:-}
# Test cases that called cr_skip_test: meson counts them apart from the passed
# ones in each suite's line; list them so a skip is never mistaken for a pass.
skipped() {
  local s
  s=$(grep -h '# SKIP' "$1/meson-logs/testlog.txt" || true)
  if [ -n "$s" ]; then
    echo "Skipped test cases (not passed):"
    echo "$s" | sed 's/^ok - /  /'
  fi
}
case "$mode" in
  "")
    rm -rf build
    meson setup build >/dev/null
    meson compile -C build
    meson test -C build --print-errorlogs --num-processes 2
    skipped build
    ;;
  --sanitize)
    rm -rf build-san
    meson setup build-san -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
    meson compile -C build-san
    # Peers are forked by the integration tests; make every sanitizer report fatal.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      meson test -C build-san --print-errorlogs --num-processes 2 --timeout-multiplier 3
    skipped build-san
    ;;
  --fuzz)
    secs=${2:-60}
    rm -rf build-fuzz
    CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false -Dbench=false >/dev/null
    meson compile -C build-fuzz
    for f in wire topology config inbox; do
      mkdir -p "build-fuzz/corpus-$f"
      echo "fuzzing $f for ${secs}s"
      "./build-fuzz/tests/fuzz_$f" -max_total_time="$secs" -print_final_stats=0 \
        "build-fuzz/corpus-$f" "tests/fuzz/corpus/$f" 2>&1 | tail -n 3
    done
    ;;
  *)
    echo "usage: tests/run.sh [--sanitize | --fuzz SECONDS]" >&2
    exit 2
    ;;
esac
