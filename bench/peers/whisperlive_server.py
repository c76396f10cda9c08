"""Run upstream WhisperLive 0.10.0 (the side-by-side peer) on a local model folder.

Started by bench/transcription.py with the peer venv's Python (bench/peers/setup_whisperlive.sh):

    .venv-peers/whisperlive/bin/python bench/peers/whisperlive_server.py PORT MODEL_DIR
"""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "torch_stub"))

from whisper_live.server import TranscriptionServer

logging.basicConfig(level=logging.WARNING)
port, model_dir = int(sys.argv[1]), sys.argv[2]
TranscriptionServer().run(
    "127.0.0.1",
    port,
    backend="faster_whisper",
    faster_whisper_custom_model_path=model_dir,
    single_model=True,
    max_clients=64,
    max_connection_time=3600,
)
