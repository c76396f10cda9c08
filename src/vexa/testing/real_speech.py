"""Real human speech arranged the way a meeting brings it, for tests and benches.

Why this and not espeak alone: synthetic speech with clean, even pauses hid the
streaming transcript's real faults (lost words after a pause, slow commits).
Debian's ``pocketsphinx-testdata`` ships real recordings with reference
transcripts: five clips of LibriVox read speech (one male reader), five
short spoken card names, and two short commands of its own tests (``extras``).
:func:`meeting` lays them out with uneven pauses (0.2 s to 3 s), one sentence that
stops and resumes mid-way, optional background noise at a given SNR, and an ending
in silence or in nothing at all.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from vexa.testing.speech import read_wav, resample

SR = 16000
DATA_DIR = Path(os.environ.get("VEXA_SPEECH_DATA", "/usr/share/pocketsphinx/test/data"))
_SPHINX_LINE = re.compile(r"<s>(.*)</s>\s*\((.+)\)")


class SpeechDataMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Clip:
    name: str
    audio: np.ndarray  # float32 mono 16 kHz
    text: str  # reference words, lower case

    @property
    def seconds(self) -> float:
        return len(self.audio) / SR


def _require(path: Path) -> Path:
    if not path.exists():
        raise SpeechDataMissing(
            f"{path} not found: install Debian's real-speech test data with "
            "`apt-get install pocketsphinx-testdata` (scripts/setup.sh does), "
            "or point VEXA_SPEECH_DATA at a copy of its test/data folder"
        )
    return path


def _load(path: Path) -> np.ndarray:
    audio, rate = read_wav(path)
    return resample(audio, rate, SR)


def _sphinx_clips(folder: Path, transcription: str) -> tuple[Clip, ...]:
    """Clips named by a sphinx transcription file (``<s> words </s> (name)`` per line)."""
    _require(folder)
    clips = []
    for line in (folder / transcription).read_text().splitlines():
        m = _SPHINX_LINE.search(line)
        if m:
            name = m.group(2).strip()
            clips.append(Clip(name, _load(folder / f"{name}.wav"), " ".join(m.group(1).split())))
    return tuple(clips)


@cache
def librivox() -> tuple[Clip, ...]:
    """Five LibriVox clips (Sense and Sensibility), 26.7 s, 71 words."""
    return _sphinx_clips(DATA_DIR / "librivox", "transcription")


@cache
def cards() -> tuple[Clip, ...]:
    """Five short spoken commands ("ten of clubs"), 1-3.5 s each."""
    return _sphinx_clips(DATA_DIR / "cards", "cards.transcription")


# Raw 16 kHz 16-bit recordings whose words pocketsphinx's own test suite asserts.
_RAW_REFERENCES = {
    "goforward": "go forward ten meters",
    "something": "go somewhere and do something",
}


@cache
def extras() -> tuple[Clip, ...]:
    """Two more speakers' short commands ("go forward ten meters"), 2.8 and 3.0 s, 9 words."""
    out = []
    for name, text in _RAW_REFERENCES.items():
        pcm = np.fromfile(_require(DATA_DIR / f"{name}.raw"), dtype="<i2")
        out.append(Clip(name, (pcm.astype(np.float32) / 32768.0), text))
    return tuple(out)


def all_clips() -> list[Clip]:
    """Every clip with a reference (12 clips, 102 words): LibriVox, cards and the extras, interleaved."""
    lib, crd, ext = librivox(), cards(), extras()
    order: list[Clip] = []
    for i in range(5):
        order += [lib[i], crd[i]]
        if i < len(ext):
            order.append(ext[i])
    return order


@dataclass
class Meeting:
    """One participant's audio as sent, with where each utterance's speech ends."""

    audio: np.ndarray
    utterances: list[tuple[float, float, str]] = field(default_factory=list)  # (start s, speech end s, words)
    pauses_after: list[float] = field(default_factory=list)
    trailing_silence_s: float = 0.0

    @property
    def text(self) -> str:
        return " ".join(u[2] for u in self.utterances)

    @property
    def seconds(self) -> float:
        return len(self.audio) / SR


def speech_end_s(audio: np.ndarray, floor: float = 0.05) -> float:
    """Seconds into ``audio`` where its speech ends (recordings carry some silence after the last word).

    The last 20 ms window whose RMS is above ``floor`` of the clip's loudest window.
    """
    win = int(0.02 * SR)
    frames = audio[: len(audio) // win * win].reshape(-1, win)
    rms = np.sqrt((frames**2).mean(axis=1))
    loud = np.flatnonzero(rms >= floor * rms.max()) if len(rms) else []
    return (int(loud[-1]) + 1) * win / SR if len(loud) else len(audio) / SR


def split_at_quietest(audio: np.ndarray, lo: float = 0.35, hi: float = 0.65) -> int:
    """Sample index of the quietest 30 ms between ``lo`` and ``hi`` of the clip (a gap between words)."""
    win = int(0.03 * SR)
    a, b = int(len(audio) * lo), int(len(audio) * hi)
    energy = np.convolve(audio[a:b] ** 2, np.ones(win) / win, mode="valid")
    return a + int(np.argmin(energy)) + win // 2


def meeting(
    *,
    clips: list[Clip] | None = None,
    pauses: list[float] | None = None,
    resume_mid_sentence: bool = True,
    snr_db: float | None = None,
    lead_s: float = 0.5,
    trailing_silence_s: float = 3.0,
    seed: int = 7,
) -> Meeting:
    """Arrange clips as one participant speaks in a meeting.

    ``pauses`` (cycled) separate utterances; the first clip pauses mid-sentence for
    1.2 s at its quietest point when ``resume_mid_sentence``; ``snr_db`` adds
    pink-ish background noise over the whole stream (speech level / noise level).
    """
    clips = list(clips if clips is not None else default_clips())
    pauses = pauses or PAUSES
    parts = [np.zeros(int(lead_s * SR), np.float32)]
    out = Meeting(np.zeros(0, np.float32), trailing_silence_s=trailing_silence_s)
    t = lead_s
    pieces: list[tuple[np.ndarray, str]] = []
    for i, clip in enumerate(clips):
        if i == 0 and resume_mid_sentence:
            cut = split_at_quietest(clip.audio)
            pieces += [(clip.audio[:cut], ""), (clip.audio[cut:], clip.text)]
        else:
            pieces.append((clip.audio, clip.text))
    k = 0
    pending_text = ""
    for j, (audio, text) in enumerate(pieces):
        start = t
        parts.append(audio)
        speech_end = t + speech_end_s(audio)
        t += len(audio) / SR
        last = j == len(pieces) - 1
        pause = trailing_silence_s if last else (1.2 if not text else pauses[k % len(pauses)])
        if text:
            k += 1
        words = (pending_text + " " + text).strip() if text else ""
        # A sentence that resumes mid-way is one utterance for the reference text; its
        # first half still ends (and must be committed) at the mid-sentence pause.
        out.utterances.append((start, speech_end, words))
        pending_text = ""
        out.pauses_after.append(pause)
        parts.append(np.zeros(int(pause * SR), np.float32))
        t += pause
    audio = np.concatenate(parts).astype(np.float32)
    if snr_db is not None:
        audio = add_noise(audio, snr_db, seed=seed)
    out.audio = audio
    return out


PAUSES = [0.8, 2.0, 0.3, 1.2, 3.0, 0.5, 0.2, 1.5, 0.7, 2.5]


def round_table(names: list[str], *, run: int = 0, snr_db: float | None = None) -> dict[str, Meeting]:
    """Every clip of :func:`all_clips` dealt round ``names``, each participant's audio laid out.

    ``run`` rotates which clips each one gets, their pauses and the lead silence, so several
    runs are several layouts of the same speech (streaming Whisper flips words when an
    utterance's boundaries move by 0.1 s: one layout is one draw).
    """
    clips = all_clips()
    shift = run % len(clips)
    clips = clips[shift:] + clips[:shift]
    pauses = PAUSES[run % len(PAUSES) :] + PAUSES[: run % len(PAUSES)]
    return {
        name: meeting(
            clips=clips[i :: len(names)],
            pauses=pauses[i:] + pauses[:i],
            resume_mid_sentence=i == 0,
            lead_s=0.3 + 0.1 * (run % 5),
            trailing_silence_s=1.0,
            snr_db=snr_db,
            seed=run * 10 + i,
        )
        for i, name in enumerate(names)
    }


def default_clips() -> list[Clip]:
    """LibriVox sentences with the card commands between them (10 utterances, 90 words)."""
    lib, crd = librivox(), cards()
    order: list[Clip] = []
    for i in range(5):
        order += [lib[i], crd[i]]
    return order


def add_noise(audio: np.ndarray, snr_db: float, seed: int = 7) -> np.ndarray:
    """Background noise ``snr_db`` below the speech level: white noise plus a low-passed rumble."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(len(audio) + 400)
    kernel = 0.97 ** np.arange(400)  # an exponential low-pass: more energy low, like room noise
    noise = np.convolve(white, kernel / kernel.sum(), mode="valid")[: len(audio)] * 8 + white[: len(audio)]
    speech = audio[np.abs(audio) > 1e-3]
    speech_rms = float(np.sqrt(np.mean(speech**2))) if len(speech) else 0.1
    noise_rms = float(np.sqrt(np.mean(noise**2))) or 1.0
    scale = speech_rms / (10 ** (snr_db / 20)) / noise_rms
    return np.clip(audio + noise * scale, -1.0, 1.0).astype(np.float32)
