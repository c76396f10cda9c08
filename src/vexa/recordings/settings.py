"""Where recordings are stored: one mixin, so every service that touches them names it alike.

Names follow upstream Vexa (``STORAGE_BACKEND``, ``S3_ENDPOINT``, ``S3_ACCESS_KEY``,
``S3_SECRET_KEY``); ``local`` keeps files under ``VEXA_HOME/recordings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from vexa.config import ServiceSettings, vexa_home


class RecordingStorageSettings(ServiceSettings):
    storage_backend: Literal["local", "s3", "minio"] = Field(
        "local", alias="STORAGE_BACKEND", description="local (files under RECORDINGS_DIR), s3 or minio."
    )
    recordings_dir: Path | None = Field(
        None, alias="RECORDINGS_DIR", description="Local backend's folder (default VEXA_HOME/recordings)."
    )
    s3_endpoint: str | None = Field(None, alias="S3_ENDPOINT", description="S3-compatible endpoint URL.")
    s3_bucket: str = Field("vexa-recordings", alias="S3_BUCKET")
    s3_prefix: str = Field("", alias="S3_PREFIX", description="Key prefix inside the bucket.")
    s3_region: str = Field("us-east-1", alias="S3_REGION")
    s3_access_key: SecretStr | None = Field(None, alias="S3_ACCESS_KEY", repr=False)
    s3_secret_key: SecretStr | None = Field(None, alias="S3_SECRET_KEY", repr=False)

    def local_root(self) -> Path:
        return self.recordings_dir or vexa_home() / "recordings"

    def storage_env(self) -> dict[str, str]:
        """These settings as the environment of a bot container (which gets nothing else from us)."""
        env = {"STORAGE_BACKEND": self.storage_backend}
        if self.storage_backend == "local":
            env["RECORDINGS_DIR"] = str(self.local_root())
            return env
        env.update(S3_BUCKET=self.s3_bucket, S3_PREFIX=self.s3_prefix, S3_REGION=self.s3_region)
        if self.s3_endpoint:
            env["S3_ENDPOINT"] = self.s3_endpoint
        if self.s3_access_key:
            env["S3_ACCESS_KEY"] = self.s3_access_key.get_secret_value()
        if self.s3_secret_key:
            env["S3_SECRET_KEY"] = self.s3_secret_key.get_secret_value()
        return env
