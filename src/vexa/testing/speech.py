"""Synthetic speech for tests and benches (espeak-ng), cached by content.

Real speech files would be better for accuracy figures, but espeak-ng is a
Debian package with no downloads, so every machine can make the same WAVs.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

DEFAULT_CACHE = Path(tempfile.gettempdir()) / "vexa-speech-cache"


def synthesize(
    text: str, path: Path | None = None, voice: str = "en-us", speed: int = 150, cache_dir: Path | None = None
) -> Path:
    """Speak ``text`` into a WAV (espeak-ng's native 22.05 kHz mono); returns the path.

    The same (text, voice, speed) is synthesised once and copied from the cache after that.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    cache = cache_dir or DEFAULT_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{voice}|{speed}|{text}".encode()).hexdigest()[:16]
    cached = cache / f"{key}.wav"
    if not cached.exists():
        tmp = cached.with_suffix(".tmp.wav")
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(tmp), text], check=True, timeout=60)
        tmp.replace(cached)
    if path is None:
        return cached
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, path)
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 in [-1, 1] and the sample rate (stereo is averaged)."""
    with wave.open(str(path), "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: only 16-bit PCM WAVs are supported here")
    data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return data, rate


def resample(samples: np.ndarray, rate: int, target: int = 16000) -> np.ndarray:
    """Linear-interpolation resampling: good enough to compare speech envelopes and waveforms."""
    if rate == target:
        return samples.astype(np.float32)
    n = round(len(samples) * target / rate)
    x = np.linspace(0, len(samples) - 1, n)
    return np.interp(x, np.arange(len(samples)), samples).astype(np.float32)


def best_alignment(reference: np.ndarray, received: np.ndarray) -> tuple[int, float]:
    """Offset of ``reference`` inside ``received`` and the Pearson correlation there.

    Used to prove the bot delivered the participant's actual speech, not just any sound.
    """
    if len(received) < len(reference):
        received = np.concatenate([received, np.zeros(len(reference) - len(received), np.float32)])
    n = 1 << int(np.ceil(np.log2(len(received) + len(reference))))
    corr = np.fft.irfft(np.fft.rfft(received, n) * np.conj(np.fft.rfft(reference, n)), n)
    offset = int(np.argmax(corr[: len(received) - len(reference) + 1]))
    window = received[offset : offset + len(reference)]
    if np.std(window) == 0 or np.std(reference) == 0:
        return offset, 0.0
    return offset, float(np.corrcoef(reference, window)[0, 1])


def windowed_match(
    reference: np.ndarray,
    received: np.ndarray,
    window_s: float = 2.0,
    search_s: float = 0.3,
    rate: int = 16000,
) -> list[float]:
    """Per-window correlation of ``reference`` found in ``received`` (each window aligned locally).

    A whole-file correlation drops after a single glitch shifts the rest; per window,
    a low value marks the stretch of audio where samples were lost or garbled.
    """
    offset, _ = best_alignment(reference, received)
    win, search = int(window_s * rate), int(search_s * rate)
    scores: list[float] = []
    for start in range(0, len(reference) - win + 1, win):
        ref = reference[start : start + win]
        if np.std(ref) < 1e-4:
            continue  # a pause: nothing to compare
        lo = max(0, offset + start - search)
        segment = received[lo : offset + start + win + search]
        if len(segment) < win:
            scores.append(0.0)
            continue
        scores.append(best_alignment(ref, segment)[1])
    return scores


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    """Float mono in [-1, 1] as a 16-bit PCM WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def speak_sentences(sentences: list[str], path: Path, voice: str = "en-us", pause_s: float = 1.0) -> Path:
    """One speaker saying ``sentences`` with ``pause_s`` between them, as a 16 kHz WAV."""
    parts = []
    for sentence in sentences:
        data, rate = read_wav(synthesize(sentence, voice=voice))
        parts += [resample(data, rate, 16000), np.zeros(int(pause_s * 16000), np.float32)]
    return write_wav(path, np.concatenate(parts))
