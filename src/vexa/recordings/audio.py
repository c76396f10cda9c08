"""Audio in and out of FLAC, with PyAV (FFmpeg's libraries; already faster-whisper's decoder).

FLAC because it is lossless (the post-meeting transcription hears what the bot
heard), plays in every current browser, and each chunk is a complete file: a
bot killed mid-meeting leaves chunks that all play, up to the last one written.
"""

from __future__ import annotations

import io

import av
import numpy as np

SR = 16000


def encode_flac(samples: np.ndarray, rate: int = SR) -> bytes:
    """Float32 mono in [-1, 1] -> a complete 16-bit FLAC file."""
    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with av.open(buf, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        step = 4096
        for start in range(0, len(pcm), step):
            block = pcm[start : start + step]
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def decode(data: bytes, rate: int = SR) -> np.ndarray:
    """Any file FFmpeg reads -> float32 mono at ``rate``."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    parts: list[np.ndarray] = []
    with av.open(io.BytesIO(data), "r") as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
    for out in resampler.resample(None):
        parts.append(out.to_ndarray().reshape(-1))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def place(chunks: list[tuple[int, np.ndarray]], rate: int = SR) -> np.ndarray:
    """Chunks at their start offsets (ms) on one timeline; gaps are silence, overlaps keep the later."""
    if not chunks:
        return np.zeros(0, np.float32)
    end = max(ms * rate // 1000 + len(a) for ms, a in chunks)
    track = np.zeros(end, np.float32)
    for ms, audio in sorted(chunks, key=lambda c: c[0]):
        start = ms * rate // 1000
        track[start : start + len(audio)] = audio
    return track


def mix(tracks: list[np.ndarray]) -> np.ndarray:
    """The sum of the tracks (peak-limited to full scale so nothing clips)."""
    if not tracks:
        return np.zeros(0, np.float32)
    out = np.zeros(max(len(t) for t in tracks), np.float32)
    for track in tracks:
        out[: len(track)] += track
    peak = float(np.max(np.abs(out))) if len(out) else 0.0
    return out / peak if peak > 1.0 else out
