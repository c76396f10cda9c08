"""Fixtures for the recordings tests: both storage backends, S3 through a STAND-IN server process.

``moto`` in server mode stands in for S3 (or MinIO): a real S3-API HTTP server in its
own process on 127.0.0.1, reached by boto3 exactly as a real bucket would be.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vexa.embedded import free_port
from vexa.recordings.settings import RecordingStorageSettings
from vexa.recordings.storage import RecordingStorage, open_storage


@pytest.fixture(scope="session")
def s3_standin() -> Iterator[str]:
    """The endpoint URL of a moto S3 server process (STAND-IN for S3/MinIO) on 127.0.0.1."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                httpx.get(url + "/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None:
                    raise RuntimeError("the moto S3 stand-in exited") from None
                time.sleep(0.1)
        else:
            raise RuntimeError("the moto S3 stand-in did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def storage_env(backend: str, tmp_path: Path, s3_url: str | None) -> dict[str, str]:
    if backend == "local":
        return {"STORAGE_BACKEND": "local", "RECORDINGS_DIR": str(tmp_path / "recordings")}
    assert s3_url
    return {
        "STORAGE_BACKEND": "s3",
        "S3_ENDPOINT": s3_url,
        "S3_BUCKET": "vexa-test",
        "S3_PREFIX": f"run-{tmp_path.name}",
        "S3_ACCESS_KEY": "standin",
        "S3_SECRET_KEY": "standin-secret",
    }


@pytest.fixture(params=["local", "s3"])
def backend_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    s3_url = request.getfixturevalue("s3_standin") if request.param == "s3" else None
    return storage_env(request.param, tmp_path, s3_url)


@pytest.fixture
def storage(backend_env: dict[str, str]) -> RecordingStorage:
    return open_storage(RecordingStorageSettings(**backend_env))  # type: ignore[arg-type]
