#!/usr/bin/env bash
# Run the README's test command several times in a row while the machine is kept busy, and log
# whether each run passed and how long it took.
#
#   scripts/stress_tests.sh [--runs K] [--busy N] [--log FILE] [-- PYTEST_ARGS...]
#
#   --runs K     runs in a row (default 5)
#   --busy N     busy processes (default: one per core, `nproc`); 0 runs on an idle machine
#   --log FILE   the log (default: stress-tests.log); each run's full output goes to FILE.runI.out
#   PYTEST_ARGS  what pytest is given (default: the README's `--slow`, i.e. every test)
#
# How the machine is kept busy: N processes spinning `while True: pass` in Python at normal
# priority, process i pinned to core i mod nproc with taskset (when present), for as long as the
# runs last; the tests compete with them for every core. They are stopped by their pids when the
# script ends, however it ends. Run it from the repository root with the venv active (the README's
# `pytest --slow`); it exits non-zero when any run failed.
#
#   scripts/stress_tests.sh                                   # the README's command, 5 times, busy
#   scripts/stress_tests.sh --runs 1 -- tests/test_budget_kill.py --slow   # a quick check
set -u

runs=5
busy=$(nproc)
log=stress-tests.log
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --busy) busy=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ $# -eq 0 ]; then set -- --slow; fi
python=${PYTHON:-python}

pids=()
stop_busy() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  pids=()
}
trap stop_busy EXIT
trap 'exit 130' INT TERM

cores=$(nproc)
for ((i = 0; i < busy; i++)); do
  if command -v taskset >/dev/null; then
    taskset -c $((i % cores)) "$python" -c 'while True: pass' &
  else
    "$python" -c 'while True: pass' &
  fi
  pids+=($!)
done

{
  echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname): $cores cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "# $busy busy processes (python 'while True: pass', pinned with taskset); $runs runs of: $python -m pytest $*"
  echo "# git $(git rev-parse --short HEAD 2>/dev/null || echo unknown); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$log"

failed=0
for ((run = 1; run <= runs; run++)); do
  out="$log.run$run.out"
  started=$(date +%s)
  "$python" -m pytest "$@" >"$out" 2>&1
  code=$?
  took=$(($(date +%s) - started))
  summary=$(grep -E '(passed|failed|error|no tests ran)' "$out" | tail -n 1 | sed 's/=//g' | xargs)
  if [ "$code" -eq 0 ]; then verdict=PASS; else verdict=FAIL; failed=$((failed + 1)); fi
  line="run $run/$runs: $verdict (exit $code) in $took s, load $(cut -d' ' -f1-3 /proc/loadavg): $summary"
  echo "$line" | tee -a "$log"
done
echo "$((runs - failed)) of $runs runs passed" | tee -a "$log"
[ "$failed" -eq 0 ]
