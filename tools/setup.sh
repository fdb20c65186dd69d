#!/usr/bin/env bash
# Set up (or check) the project's virtual environment at .venv, quickly when nothing changed.
# torch is installed first so that pip never pulls a CUDA build on a CPU-only machine by accident:
#   TORCH_SPEC=...  overrides the torch requirement (e.g. TORCH_SPEC="torch==2.5.1").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
log() { echo "[setup] $*"; }
# pip warns about every missing optional local index on some machines; keep real errors, drop that noise
pipq() { "$VPY" -m pip install -q "$@" 2> >(grep -v "^WARNING: Location '" >&2); }

"$PY" -c 'import sys; assert sys.version_info >= (3,10), "miniai needs Python >= 3.10"' \
  || { echo "[setup] Python >= 3.10 is required (found $("$PY" --version))"; exit 1; }
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv || { echo "[setup] venv failed: on Debian/Ubuntu run: apt-get install -y python3-venv"; exit 1; }
fi
VPY=.venv/bin/python
stamp=.venv/.miniai-stamp
want=$(cat pyproject.toml tools/setup.sh | sha256sum | cut -d' ' -f1)

if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if ! "$VPY" -c 'import torch' 2>/dev/null; then
    if [ -n "${TORCH_SPEC:-}" ]; then spec=$TORCH_SPEC
    elif ls /opt/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then spec="torch==2.13.0"   # the CPU wheel on this machine's disk
    else spec="torch"; fi                                                                    # pip picks the build for this hardware
    log "installing $spec (before anything that depends on torch)"
    pipq "$spec"
  fi
  log "installing miniai with its dev extra"
  pipq -e ".[dev]"
  echo "$want" > "$stamp"
else
  log ".venv is up to date (nothing reinstalled)"
fi

# Fashion-MNIST: the Debian package when we are root, otherwise $MINIAI_DATA or the Hugging Face Hub at first use.
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ -z "${MINIAI_DATA:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing the Debian package dataset-fashion-mnist"
    { apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }; } \
      || log "could not install dataset-fashion-mnist: miniai will try the Hugging Face Hub"
  else
    log "Fashion-MNIST not found locally: set MINIAI_DATA to a folder with the IDX .gz files, or miniai will use the Hub"
  fi
fi

# the docs site's math (`make docs`): Debian's MathJax 2, installed when we are root (or $MINIAI_MATHJAX names one)
if [ ! -f /usr/share/javascript/mathjax/MathJax.js ] && [ -z "${MINIAI_MATHJAX:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "installing the Debian package libjs-mathjax for the docs site"
  { apt-get install -y -q libjs-mathjax >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libjs-mathjax >/dev/null 2>&1; }; } \
    || log "could not install libjs-mathjax: \`make docs\` needs it (or MINIAI_MATHJAX)"
fi
