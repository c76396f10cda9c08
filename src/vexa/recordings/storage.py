"""Object storage for recordings: the local filesystem or an S3-compatible bucket.

Both backends speak in keys (``"<meeting>/<recording>/chunks/<track>/000001.flac"``)
so the rest of the code never knows which one it has. boto3 is synchronous, so
every call runs in a worker thread; the local backend does the same for file I/O.
Keys are built by our code only, and checked anyway: a key that would climb out of
the local root is refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Protocol

from vexa.recordings.settings import RecordingStorageSettings

log = logging.getLogger(__name__)


class StorageError(RuntimeError):
    """The backend refused or failed an operation."""


class RecordingStorage(Protocol):
    backend: str

    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes: ...
    async def get_range(self, key: str, start: int, end: int) -> bytes: ...
    async def size(self, key: str) -> int | None: ...
    async def list(self, prefix: str) -> list[str]: ...
    async def delete_prefix(self, prefix: str) -> int: ...


def _check_key(key: str) -> str:
    if not key or any(part in ("", ".", "..") for part in key.split("/")):
        raise StorageError(f"invalid storage key {key!r}")
    return key


class LocalStorage:
    """Files under one root; writes go to a temporary name first and are renamed into place."""

    backend = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError as exc:
            raise StorageError(f"{key} not found") from exc

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        with open(self._path(key), "rb") as f:
            f.seek(start)
            return f.read(end - start + 1)

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        try:
            return await asyncio.to_thread(self._get_range, key, start, end)
        except FileNotFoundError as exc:
            raise StorageError(f"{key} not found") from exc

    async def size(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError:
            return None

    def _list(self, prefix: str) -> list[str]:
        base = self.root / _check_key(prefix.rstrip("/"))
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".part")
        )

    async def list(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._list, prefix)

    def _delete_prefix(self, prefix: str) -> int:
        base = self.root / _check_key(prefix.rstrip("/"))
        if not base.exists():
            return 0
        count = sum(1 for p in base.rglob("*") if p.is_file())
        shutil.rmtree(base)
        return count

    async def delete_prefix(self, prefix: str) -> int:
        return await asyncio.to_thread(self._delete_prefix, prefix)


class S3Storage:
    """One bucket (created when missing) of an S3-compatible service, keys under ``prefix``."""

    backend = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._bucket_checked = False

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def _ensure_bucket(self) -> None:
        if self._bucket_checked:
            return
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)
            log.info("created bucket %s", self.bucket)
        self._bucket_checked = True

    async def _call(self, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        def run() -> Any:
            self._ensure_bucket()
            return fn(Bucket=self.bucket, **kwargs)

        try:
            return await asyncio.to_thread(run)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise StorageError(f"S3 {fn.__name__} failed: {code}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 {fn.__name__} failed: {type(exc).__name__}") from exc

    async def put(self, key: str, data: bytes) -> None:
        await self._call(self.client.put_object, Key=self._key(key), Body=data)

    async def get(self, key: str) -> bytes:
        response = await self._call(self.client.get_object, Key=self._key(key))
        return await asyncio.to_thread(response["Body"].read)

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        response = await self._call(self.client.get_object, Key=self._key(key), Range=f"bytes={start}-{end}")
        return await asyncio.to_thread(response["Body"].read)

    async def size(self, key: str) -> int | None:
        try:
            response = await self._call(self.client.head_object, Key=self._key(key))
        except StorageError:
            return None
        return int(response["ContentLength"])

    async def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        token: str | None = None
        full = self.prefix + _check_key(prefix.rstrip("/")) + "/"
        for _ in range(10_000):  # bounded: 10M keys
            kwargs: dict[str, Any] = {"Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            page = await self._call(self.client.list_objects_v2, **kwargs)
            keys += [obj["Key"][len(self.prefix) :] for obj in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
        return sorted(keys)

    async def delete_prefix(self, prefix: str) -> int:
        keys = await self.list(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self.prefix + k} for k in keys[start : start + 1000]]
            await self._call(self.client.delete_objects, Delete={"Objects": batch, "Quiet": True})
        return len(keys)


def open_storage(settings: RecordingStorageSettings) -> RecordingStorage:
    """The backend the settings name."""
    if settings.storage_backend == "local":
        return LocalStorage(settings.local_root())
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30),
    )
    return S3Storage(client, settings.s3_bucket, settings.s3_prefix)
