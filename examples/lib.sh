# examples/lib.sh: what the example scripts share. Sourced, not run:
#
#   . "$(dirname "$0")/lib.sh"; ohm_init NAME
#
#   ohm_init NAME         messages name NAME; sets OHM_ROOT (the repository)
#   ohm_die MSG           MSG on stderr, exit 1
#   ohm_usage_error MSG   MSG on stderr with a hint to --help, exit 2
#   ohm_help              prints the script's header comment (after the #! line), exit 0
#   ohm_need "$@"         inside an option loop: the option $1 has a value (else exit 2)
#   ohm_posint OPT VALUE  VALUE is a positive integer (else exit 2)
#   ohm_count OPT VALUE   VALUE is a non-negative integer (else exit 2)
#   ohm_build DIR TARGET...
#                         sets OHM_BUILD to the build folder: DIR when not empty, else
#                         $OHM_BUILD, else the first of build/, build-*/ that holds
#                         every TARGET (paths in the build folder, e.g. peer/ohmpeer);
#                         when none does, configures build/ and compiles the TARGETs.
#                         Then sets and exports OHMPEER and OHMTOPO (ohm-launch uses
#                         them), and sets OHM_LAUNCH (the build tree's launcher) and
#                         OHM_REPORT (its ohm-report).
#   ohm_load              prints the 1-minute load average (wall times depend on it)
#   ohm_lock / ohm_unlock hold / release flock on $OHM_EXPERIMENT_LOCK (default
#                         /tmp/ohm-experiments.lock) on fd 9, so that experiments
#                         on a shared machine do not overlap
#   ohm_compare OUT DIR...
#                         OUT/report.html: ohm-report's comparison of the run folders
#                         DIR... that have a summary.json (a warning if it fails)
#
# Topologies and configurations are read by the tools, never by the scripts:
# `ohmtopo show --json FILE`, `ohmtopo edit FILE --keys DIR`, `ohmpeer config --get`.

ohm_init() {
  OHM_NAME=$1
  OHM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
}

ohm_die() {
  echo "$OHM_NAME: $*" >&2
  exit 1
}

ohm_usage_error() {
  echo "$OHM_NAME: $* (try --help)" >&2
  exit 2
}

ohm_help() {
  sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'
  exit 0
}

ohm_need() {
  [ $# -ge 2 ] || ohm_usage_error "$1 needs a value"
}

ohm_posint() {
  [[ $2 =~ ^[1-9][0-9]*$ ]] || ohm_usage_error "$1 must be a positive integer, not '$2'"
}

ohm_count() {
  [[ $2 =~ ^[0-9]+$ ]] || ohm_usage_error "$1 must be a count, not '$2'"
}

ohm_build() {
  local dir=$1 d t found
  shift
  [ -n "$dir" ] || dir=${OHM_BUILD:-}
  if [ -z "$dir" ]; then
    for d in "$OHM_ROOT/build" "$OHM_ROOT"/build-*; do
      [ -d "$d" ] || continue
      found=1
      for t in "$@"; do [ -x "$d/$t" ] || found=0; done
      if [ "$found" = 1 ]; then dir=$d; break; fi
    done
  fi
  if [ -z "$dir" ]; then
    dir=$OHM_ROOT/build
    echo "$OHM_NAME: building $* in $dir" >&2
    [ -f "$dir/build.ninja" ] || meson setup "$dir" >/dev/null
    ninja -C "$dir" "$@" >/dev/null
  fi
  for t in "$@"; do
    [ -x "$dir/$t" ] || ohm_die "$dir/$t not found (build first: meson setup build && meson compile -C build, or --build DIR)"
  done
  OHM_BUILD=$(cd "$dir" && pwd)
  OHMPEER=$OHM_BUILD/peer/ohmpeer
  OHMTOPO=$OHM_BUILD/topology/ohmtopo
  OHM_LAUNCH=$OHM_BUILD/peer/ohm-launch
  OHM_REPORT=$OHM_BUILD/peer/ohm-report
  export OHMPEER OHMTOPO
}

ohm_load() {
  cut -d' ' -f1 /proc/loadavg
}

ohm_lock() {
  exec 9>"${OHM_EXPERIMENT_LOCK:-/tmp/ohm-experiments.lock}"
  flock 9
}

ohm_unlock() {
  exec 9>&-
}

ohm_compare() {
  local out=$1 d dirs=()
  shift
  for d in "$@"; do [ -f "$d/summary.json" ] && dirs+=("$d"); done
  if [ ${#dirs[@]} -eq 0 ]; then
    echo "$OHM_NAME: no finished run to compare" >&2
    return 0
  fi
  "$OHM_REPORT" "${dirs[@]}" -o "$out/report.html" ||
    echo "$OHM_NAME: ohm-report failed; $out/report.html not written" >&2
}
