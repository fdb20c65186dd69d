#!/usr/bin/env bash
# Set up, then run every test: package/notebooks in sync, README up to date, all notebooks, pytest.
# Ends with one line "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
export PATH="$PWD/.venv/bin:$PATH" PYTHONHASHSEED=0 MPLBACKEND=Agg
# OpenMP threads that wait passively: on a shared 2-core VM, torch's spinning threads made a training step 5-8x slower
# when another process wanted a core (measured: 1 thread 65-106 ms, 2 spinning 546-568 ms, 2 passive 80-112 ms)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# the browser check needs Debian's chromium; install it when we can (the check itself says so if it is missing)
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[test] installing chromium for the docs browser check"
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "[test] could not install chromium"
fi
exec python tools/run_tests.py "$@"
