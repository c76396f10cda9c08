"""Both storage backends behave alike: whole and ranged reads, listing, deletion by prefix."""

from __future__ import annotations

import pytest

from vexa.recordings.storage import RecordingStorage, StorageError


async def test_put_get_range_list_delete(storage: RecordingStorage) -> None:
    blob = bytes(range(256)) * 40
    await storage.put("7/99/chunks/t1/000001_0.flac", blob)
    await storage.put("7/99/chunks/t1/000002_10000.flac", b"second")
    await storage.put("8/1/mixed.flac", b"other meeting")

    assert await storage.get("7/99/chunks/t1/000001_0.flac") == blob
    assert await storage.get_range("7/99/chunks/t1/000001_0.flac", 100, 299) == blob[100:300]
    assert await storage.size("7/99/chunks/t1/000001_0.flac") == len(blob)
    assert await storage.size("7/99/missing.flac") is None
    assert await storage.list("7/99/chunks") == [
        "7/99/chunks/t1/000001_0.flac",
        "7/99/chunks/t1/000002_10000.flac",
    ]

    assert await storage.delete_prefix("7/") == 2
    assert await storage.list("7") == []
    with pytest.raises(StorageError):
        await storage.get("7/99/chunks/t1/000001_0.flac")
    assert await storage.get("8/1/mixed.flac") == b"other meeting", "other meetings' files stay"


@pytest.mark.parametrize("key", ["../escape", "7/../../etc", "/abs", "a//b", ""])
async def test_keys_cannot_escape(storage: RecordingStorage, key: str) -> None:
    with pytest.raises(StorageError):
        await storage.put(key, b"x")
