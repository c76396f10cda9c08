"""Model resolution from local folders and pip packages; never a hub download."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vexa.transcription.models import BASE_SHA256, ModelUnavailable, install_model, resolve_model
from vexa.transcription.protocol import ProtocolError, parse_config


def test_tiny_en_resolves_to_the_packaged_folder() -> None:
    path = Path(resolve_model("tiny.en"))
    assert (path / "model.bin").exists() and (path / "tokenizer.json").exists()


def test_existing_folder_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"x")
    assert resolve_model(str(tmp_path)) == str(tmp_path)


@pytest.mark.parametrize("spec", ["/no/such/model", "large-v3"])
def test_unavailable_model_says_how_to_provide_one(spec: str) -> None:
    with pytest.raises(ModelUnavailable) as exc:
        resolve_model(spec, allow_download=False)
    assert "vexa models install" in str(exc.value) and "WHISPER_MODEL=/path/to/ctranslate2-model" in str(
        exc.value
    )


def test_hub_names_pass_through_only_when_downloads_are_allowed() -> None:
    assert resolve_model("large-v3", allow_download=True) == "large-v3"


def test_folder_without_weights_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match=r"no model\.bin"):
        resolve_model(str(tmp_path))


@pytest.mark.slow
def test_install_base_assembles_verifies_and_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "base"
    assert install_model("base", target) == target
    model_bin = target / "model.bin"
    digest = hashlib.sha256(model_bin.read_bytes()).hexdigest()
    assert digest == BASE_SHA256
    assert {p.name for p in target.iterdir()} >= {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }
    mtime = model_bin.stat().st_mtime_ns
    assert install_model("base", target) == target
    assert model_bin.stat().st_mtime_ns == mtime  # second run does not rebuild


def test_unknown_bundled_name_is_refused() -> None:
    with pytest.raises(ModelUnavailable, match="choose one of"):
        install_model("medium")


def test_config_accepts_whisperlive_fields_and_ignores_unknown() -> None:
    cfg = parse_config(
        '{"uid": "u", "language": "auto", "task": "translate", "model": "small", "use_vad": false,'
        ' "meeting_id": 12345, "platform": "zoom", "token": "t", "send_last_n_segments": 3,'
        ' "no_speech_thresh": 0.4, "hotwords": "Vexa", "clip_audio": true, "whatever": 1}'
    )
    assert cfg.language is None and cfg.task == "translate" and not cfg.use_vad
    assert cfg.meeting_id == "12345" and cfg.has_meeting_context and cfg.send_last_n_segments == 3


def test_config_errors_do_not_echo_secrets() -> None:
    with pytest.raises(ProtocolError) as exc:
        parse_config('{"uid": "u", "token": "' + "s" * 600 + '"}')
    assert "token" in str(exc.value) and "sss" not in str(exc.value)
