"""Settings shared by every service.

Each service owns one pydantic-settings class (in its own ``settings.py``) that
inherits from the mixins here, so the connection variables have the same names
everywhere: ``DATABASE_URL`` / ``REDIS_URL`` first, then upstream Vexa's split
names (``DB_HOST``, ``DB_PORT``, ``DB_NAME``, ``DB_USER``, ``DB_PASSWORD``,
``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_PASSWORD``, ``REDIS_DB``).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

STREAM_NAME_DEFAULT = "transcription_segments"
SPEAKER_STREAM_DEFAULT = "speaker_events_relative"


def vexa_home() -> Path:
    """State directory for the embedded servers, generated secrets and models."""
    env = os.environ.get("VEXA_HOME")
    if env:
        return Path(env).expanduser()
    return Path("~/.local/share/vexa").expanduser()


class ServiceSettings(BaseSettings):
    """Base for every service's settings: environment first, ``.env`` second."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    log_level: str = Field("INFO", alias="LOG_LEVEL")
    max_request_body_bytes: int = Field(
        1024 * 1024, gt=0, alias="MAX_REQUEST_BODY_BYTES", description="Larger request bodies get 413."
    )


class DatabaseSettings(ServiceSettings):
    """PostgreSQL location. ``DATABASE_URL`` wins over the split ``DB_*`` names."""

    database_url: str | None = Field(None, alias="DATABASE_URL")
    db_host: str | None = Field(None, alias="DB_HOST")
    db_port: int = Field(5432, alias="DB_PORT")
    db_name: str = Field("vexa", alias="DB_NAME")
    db_user: str = Field("postgres", alias="DB_USER")
    db_password: str = Field("", alias="DB_PASSWORD")
    db_pool_size: int = Field(10, alias="DB_POOL_SIZE")

    def async_database_url(self) -> str:
        """The SQLAlchemy URL with the asyncpg driver, whatever form the user gave."""
        if self.database_url:
            return to_asyncpg_url(self.database_url)
        if not self.db_host:
            raise RuntimeError(
                "No database configured: set DATABASE_URL (or DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD), "
                "or run `vexa up`, which starts an embedded PostgreSQL."
            )
        auth = quote(self.db_user, safe="")
        if self.db_password:
            auth += ":" + quote(self.db_password, safe="")
        return f"postgresql+asyncpg://{auth}@{self.db_host}:{self.db_port}/{self.db_name}"

    def has_database(self) -> bool:
        return bool(self.database_url or self.db_host)


class RedisSettings(ServiceSettings):
    """Redis location. ``REDIS_URL`` wins over ``REDIS_HOST``/``REDIS_PORT``."""

    redis_url_raw: str | None = Field(None, alias="REDIS_URL")
    redis_host: str | None = Field(None, alias="REDIS_HOST")
    redis_port: int = Field(6379, alias="REDIS_PORT")
    redis_password: str | None = Field(None, alias="REDIS_PASSWORD")
    redis_db: int = Field(0, alias="REDIS_DB")

    def redis_url(self) -> str:
        if self.redis_url_raw:
            return self.redis_url_raw.replace("valkey://", "redis://", 1)
        if not self.redis_host:
            raise RuntimeError(
                "No Redis configured: set REDIS_URL (or REDIS_HOST/REDIS_PORT), "
                "or run `vexa up`, which starts an embedded Valkey."
            )
        auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"

    def has_redis(self) -> bool:
        return bool(self.redis_url_raw or self.redis_host)


class DataSettings(DatabaseSettings, RedisSettings):
    """For services that need both stores (and so check API keys)."""

    auth_cache_ttl_s: float = Field(30.0, ge=0, alias="AUTH_CACHE_TTL_S")


def to_asyncpg_url(url: str) -> str:
    """Accept ``postgres://``, ``postgresql://`` and ``postgresql+psycopg://`` alike."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")
