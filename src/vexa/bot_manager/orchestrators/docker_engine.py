"""Bots as Docker containers (``ORCHESTRATOR=docker``), via the Docker SDK.

One container per bot from ``BOT_IMAGE``, labelled with the user and meeting
so ``list()`` and ``GET /bots/status`` can find them again after a manager
restart; ``auto_remove`` cleans up exited ones. The SDK is blocking, so every
call runs in a worker thread. The client is injectable: tests pass a stand-in
for the Docker engine and assert the exact requests made.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from vexa.bot_manager.orchestrators.base import LABEL_MANAGED, BotInfo, BotSpec, BotStartError, Orchestrator
from vexa.bot_manager.settings import BotManagerSettings

log = logging.getLogger(__name__)

_RUNNING_STATES = frozenset({"created", "running", "restarting", "paused"})
# Chromium needs more shared memory than Docker's 64 MB default.
BOT_SHM_SIZE = "1g"


def _docker_errors() -> tuple[type[Exception], type[Exception]]:
    import docker.errors

    return docker.errors.NotFound, docker.errors.DockerException


class DockerOrchestrator(Orchestrator):
    kind = "docker"

    def __init__(self, settings: BotManagerSettings, client: Any | None = None) -> None:
        super().__init__()
        self.settings = settings
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import docker

            self._client = docker.from_env()
        return self._client

    def run_kwargs(self, spec: BotSpec) -> dict[str, Any]:
        """The keyword arguments of ``containers.run`` for one bot (the whole request)."""
        s = self.settings
        kwargs: dict[str, Any] = {
            "image": s.bot_image,
            "name": spec.name,
            "detach": True,
            "auto_remove": True,
            # Where recordings go (a container shares no files with us: use S3/MinIO there).
            "environment": {
                **s.storage_env(),
                "BOT_CONFIG": spec.bot_config_json,
                "BOT_TOKEN": spec.bot_token,
            },
            "labels": spec.labels(),
            "mem_limit": s.bot_memory_limit,
            "nano_cpus": int(s.bot_cpu_limit * 1_000_000_000),
            "shm_size": BOT_SHM_SIZE,
        }
        if s.docker_network:
            kwargs["network"] = s.docker_network
        return kwargs

    async def start(self, spec: BotSpec) -> str:
        _, docker_error = _docker_errors()
        kwargs = self.run_kwargs(spec)
        try:
            container = await asyncio.to_thread(self.client.containers.run, **kwargs)
        except docker_error as exc:
            raise BotStartError(f"docker could not start {spec.name}: {exc}") from exc
        log.info("started container %s (%s) for meeting %s", spec.name, container.id, spec.meeting_id)
        return str(container.id)

    async def stop(self, handle: str, timeout_s: float = 10.0) -> None:
        not_found, docker_error = _docker_errors()
        try:
            container = await asyncio.to_thread(self.client.containers.get, handle)
            await asyncio.to_thread(container.stop, timeout=int(max(timeout_s, 1)))
        except not_found:
            return
        except docker_error as exc:
            log.warning("docker could not stop %s: %s", handle, exc)
            return
        # auto_remove deletes it; remove explicitly in case the engine did not.
        try:
            await asyncio.to_thread(container.remove, force=True)
        except docker_error:
            pass

    @staticmethod
    def _info(container: Any) -> BotInfo:
        attrs = getattr(container, "attrs", {}) or {}
        state = "running" if container.status in _RUNNING_STATES else "exited"
        exit_code = (attrs.get("State") or {}).get("ExitCode")
        return BotInfo(
            handle=str(container.id),
            state=state,
            labels=dict(container.labels or {}),
            name=container.name,
            created_at=attrs.get("Created"),
            exit_code=exit_code if state == "exited" else None,
        )

    async def status(self, handle: str) -> BotInfo | None:
        not_found, _ = _docker_errors()
        try:
            container = await asyncio.to_thread(self.client.containers.get, handle)
        except not_found:
            return None
        return self._info(container)

    async def list(self) -> list[BotInfo]:
        containers = await asyncio.to_thread(
            self.client.containers.list, all=True, filters={"label": f"{LABEL_MANAGED}=true"}
        )
        return [self._info(c) for c in containers]
