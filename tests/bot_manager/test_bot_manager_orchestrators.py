"""Docker and Kubernetes orchestrators: the exact requests they build.

No Docker engine and no Kubernetes cluster exist on the test machines, so the
SDK objects are replaced by STAND-INS for those outside engines
(``DockerEngineStandIn``, ``KubeApiStandIn``) that record every call and
answer like the real APIs. One test also runs the whole bot-manager (real
PostgreSQL/Redis) on top of the Docker stand-in.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import httpx
import pytest
from bot_manager_helpers import make_settings, wait_for
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from sqlalchemy import text

from vexa.bot_manager.app import create_app
from vexa.bot_manager.lifecycle import TRANSITIONS, IllegalTransition, check_transition
from vexa.bot_manager.orchestrators import BotSpec, BotStartError, create_orchestrator
from vexa.bot_manager.orchestrators.docker_engine import DockerOrchestrator
from vexa.bot_manager.orchestrators.kubernetes_pods import KubernetesOrchestrator
from vexa.bot_manager.orchestrators.process import ProcessOrchestrator
from vexa.bot_manager.settings import BotManagerSettings
from vexa.testing.asgi import serve_app

CONFIG = json.dumps({"meeting_id": 7, "platform": "google_meet"})
SPEC = BotSpec(7, 3, "google_meet", "abc-defg-hij", CONFIG, "vbt_meeting-token")
LABELS = {
    "vexa.bot": "true",
    "vexa.user_id": "3",
    "vexa.meeting_id": "7",
    "vexa.platform": "google_meet",
    "vexa.native_meeting_id": "abc-defg-hij",
}


class FakeContainer:
    def __init__(self, engine: DockerEngineStandIn, cid: str, name: str, labels: dict[str, str]) -> None:
        self.engine, self.id, self.name, self.labels = engine, cid, name, labels
        self.status = "running"
        self.attrs: dict[str, Any] = {"Created": "2026-01-01T00:00:00Z", "State": {"ExitCode": 0}}

    def stop(self, timeout: int) -> None:
        self.engine.calls.append(("stop", self.id, timeout))
        self.status = "exited"

    def remove(self, force: bool) -> None:
        self.engine.calls.append(("remove", self.id, force))
        self.engine.containers_by_id.pop(self.id, None)


class DockerEngineStandIn:
    """Stand-in for ``docker.DockerClient``: records calls, keeps containers in a dict."""

    def __init__(self, fail_run: bool = False) -> None:
        self.calls: list[tuple] = []
        self.containers_by_id: dict[str, FakeContainer] = {}
        self.fail_run = fail_run
        self.containers = self

    def run(self, **kwargs: Any) -> FakeContainer:
        self.calls.append(("run", kwargs))
        if self.fail_run:
            raise docker.errors.ImageNotFound("No such image: vexa-bot:test")
        c = FakeContainer(self, f"cid{len(self.containers_by_id) + 1:04d}", kwargs["name"], kwargs["labels"])
        self.containers_by_id[c.id] = c
        return c

    def get(self, cid: str) -> FakeContainer:
        self.calls.append(("get", cid))
        if cid not in self.containers_by_id:
            raise docker.errors.NotFound(f"No such container: {cid}")
        return self.containers_by_id[cid]

    def list(self, all: bool, filters: dict[str, str]) -> list[FakeContainer]:
        self.calls.append(("list", all, filters))
        key, value = filters["label"].split("=")
        return [c for c in self.containers_by_id.values() if c.labels.get(key) == value]


class KubeApiStandIn:
    """Stand-in for ``kubernetes.client.CoreV1Api`` (the cluster's API server)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.pods: dict[str, k8s.V1Pod] = {}
        self.secrets: dict[str, k8s.V1Secret] = {}

    def create_namespaced_secret(self, namespace: str, body: k8s.V1Secret) -> k8s.V1Secret:
        self.calls.append(("create_secret", namespace, body))
        self.secrets[body.metadata.name] = body
        return body

    def patch_namespaced_secret(self, name: str, namespace: str, body: dict) -> k8s.V1Secret:
        self.calls.append(("patch_secret", name, namespace, body))
        return self.secrets[name]

    def delete_namespaced_secret(self, name: str, namespace: str) -> None:
        self.calls.append(("delete_secret", name, namespace))
        if self.secrets.pop(name, None) is None:
            raise ApiException(status=404, reason="Not Found")

    def create_namespaced_pod(self, namespace: str, body: k8s.V1Pod) -> k8s.V1Pod:
        self.calls.append(("create", namespace, body))
        body.metadata.creation_timestamp = datetime(2026, 1, 1, tzinfo=UTC)
        body.metadata.uid = f"uid-{body.metadata.name}"
        body.status = k8s.V1PodStatus(phase="Pending")
        self.pods[body.metadata.name] = body
        return body

    def read_namespaced_pod(self, name: str, namespace: str) -> k8s.V1Pod:
        self.calls.append(("read", name, namespace))
        if name not in self.pods:
            raise ApiException(status=404, reason="Not Found")
        return self.pods[name]

    def delete_namespaced_pod(self, name: str, namespace: str, grace_period_seconds: int) -> None:
        self.calls.append(("delete", name, namespace, grace_period_seconds))
        if self.pods.pop(name, None) is None:
            raise ApiException(status=404, reason="Not Found")

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> Any:
        self.calls.append(("list", namespace, label_selector))
        key, value = label_selector.split("=")
        return SimpleNamespace(items=[p for p in self.pods.values() if p.metadata.labels.get(key) == value])


# Bot containers share no files with the bot-manager: they are told where recordings go.
STORAGE_ENV = {
    "STORAGE_BACKEND": "minio",
    "S3_BUCKET": "rec",
    "S3_PREFIX": "",
    "S3_REGION": "us-east-1",
    "S3_ENDPOINT": "http://minio:9000",
    "S3_ACCESS_KEY": "ak",
    "S3_SECRET_KEY": "sk",
}


def _settings(**kw: Any) -> BotManagerSettings:
    base = {
        "DATABASE_URL": "postgresql://u@127.0.0.1/x",
        "REDIS_URL": "redis://127.0.0.1:1",
        "BOT_IMAGE_NAME": "vexa-bot:test",
        "DOCKER_NETWORK": "vexa_net",
        "K8S_NAMESPACE": "vexa",
        "BOT_MEMORY_LIMIT": "2g",
        "BOT_CPU_LIMIT": 1.5,
        "BOT_STOP_TIMEOUT_S": 20,
        "STORAGE_BACKEND": "minio",
        "S3_ENDPOINT": "http://minio:9000",
        "S3_BUCKET": "rec",
        "S3_ACCESS_KEY": "ak",
        "S3_SECRET_KEY": "sk",
    }
    base.update(kw)
    return BotManagerSettings(**base)


async def test_docker_builds_exact_run_request_and_maps_state():
    engine = DockerEngineStandIn()
    orch = DockerOrchestrator(_settings(), client=engine)
    handle = await orch.start(SPEC)
    assert handle == "cid0001"
    assert engine.calls[0] == (
        "run",
        {
            "image": "vexa-bot:test",
            "name": "vexa-bot-7",
            "detach": True,
            "auto_remove": True,
            "environment": {**STORAGE_ENV, "BOT_CONFIG": CONFIG, "BOT_TOKEN": "vbt_meeting-token"},
            "labels": LABELS,
            "mem_limit": "2g",
            "nano_cpus": 1_500_000_000,
            "shm_size": "1g",
            "network": "vexa_net",
        },
    )
    info = await orch.status(handle)
    assert info is not None and info.state == "running" and info.meeting_id == 7 and info.user_id == 3
    [listed] = await orch.list()
    assert listed.handle == handle and listed.name == "vexa-bot-7"
    assert ("list", True, {"label": "vexa.bot=true"}) in engine.calls
    await orch.stop(handle, timeout_s=12)
    assert ("stop", handle, 12) in engine.calls and ("remove", handle, True) in engine.calls
    assert await orch.status(handle) is None
    await orch.stop(handle)  # unknown: a no-op, not an error
    with pytest.raises(BotStartError, match="No such image"):
        await DockerOrchestrator(_settings(), client=DockerEngineStandIn(fail_run=True)).start(SPEC)


def test_kubernetes_bot_pods_read_s3_keys_from_the_named_secret():
    """With K8S_STORAGE_CREDENTIALS_FROM the keys never appear in a pod spec, only a reference."""
    orch = KubernetesOrchestrator(
        _settings(K8S_STORAGE_CREDENTIALS_FROM="vexa-secrets"), api=KubeApiStandIn()
    )
    manifest = k8s.ApiClient().sanitize_for_serialization(orch.pod_manifest(SPEC))
    env = manifest["spec"]["containers"][0]["env"]
    plain = {e["name"]: e["value"] for e in env if "value" in e}
    assert plain == {
        **{k: v for k, v in STORAGE_ENV.items() if k not in ("S3_ACCESS_KEY", "S3_SECRET_KEY")},
        "BOT_CONFIG": CONFIG,
    }
    assert not {"ak", "sk"} & set(plain.values()), "the keys themselves are not in the pod spec"
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs == {
        "S3_ACCESS_KEY": {"name": "vexa-secrets", "key": "S3_ACCESS_KEY", "optional": True},
        "S3_SECRET_KEY": {"name": "vexa-secrets", "key": "S3_SECRET_KEY", "optional": True},
        "BOT_TOKEN": {"name": "vexa-bot-7-token", "key": "token"},
    }
    local = KubernetesOrchestrator(
        _settings(K8S_STORAGE_CREDENTIALS_FROM="vexa-secrets", STORAGE_BACKEND="local", RECORDINGS_DIR="/r"),
        api=KubeApiStandIn(),
    )
    local_env = k8s.ApiClient().sanitize_for_serialization(local.pod_manifest(SPEC))["spec"]["containers"][0][
        "env"
    ]
    assert [e["name"] for e in local_env if "valueFrom" in e] == ["BOT_TOKEN"], "no S3 keys for local storage"


async def test_kubernetes_builds_exact_pod_and_maps_phases():
    api = KubeApiStandIn()
    orch = KubernetesOrchestrator(_settings(), api=api)
    handle = await orch.start(SPEC)
    assert handle == "vexa-bot-7"
    # The token goes into a Secret of its own (created first), owned by the Pod once it exists.
    op, namespace, secret = api.calls[0]
    assert (op, namespace, secret.metadata.name) == ("create_secret", "vexa", "vexa-bot-7-token")
    assert k8s.ApiClient().sanitize_for_serialization(orch.secret_manifest(SPEC)) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "vexa-bot-7-token",
            "namespace": "vexa",
            "labels": {**LABELS, "app.kubernetes.io/name": "vexa-bot"},
        },
        "stringData": {"token": "vbt_meeting-token"},
    }
    op, namespace, pod = api.calls[1]
    assert (op, namespace) == ("create", "vexa")
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "vexa-bot-7", "uid": "uid-vexa-bot-7"}
    assert api.calls[2] == (
        "patch_secret",
        "vexa-bot-7-token",
        "vexa",
        {"metadata": {"ownerReferences": [owner]}},
    )
    manifest = k8s.ApiClient().sanitize_for_serialization(orch.pod_manifest(SPEC))
    assert manifest == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "vexa-bot-7",
            "namespace": "vexa",
            "labels": {**LABELS, "app.kubernetes.io/name": "vexa-bot"},
        },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 20,
            "containers": [
                {
                    "name": "bot",
                    "image": "vexa-bot:test",
                    "env": [
                        *({"name": k, "value": v} for k, v in STORAGE_ENV.items()),
                        {"name": "BOT_CONFIG", "value": CONFIG},
                        {
                            "name": "BOT_TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": "vexa-bot-7-token", "key": "token"}},
                        },
                    ],
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "512Mi"},
                        "limits": {"cpu": "1500m", "memory": "2g"},
                    },
                }
            ],
        },
    }
    assert pod.spec.restart_policy == "Never" and pod.metadata.labels["vexa.meeting_id"] == "7"
    info = await orch.status(handle)
    assert info is not None and info.state == "running" and info.created_at.startswith("2026-01-01")
    terminated = k8s.V1ContainerStateTerminated(exit_code=137)
    api.pods[handle].status = k8s.V1PodStatus(
        phase="Failed",
        container_statuses=[
            k8s.V1ContainerStatus(
                name="bot",
                image="i",
                image_id="",
                ready=False,
                restart_count=0,
                state=k8s.V1ContainerState(terminated=terminated),
            )
        ],
    )
    info = await orch.status(handle)
    assert info.state == "exited" and info.exit_code == 137
    assert [i.handle for i in await orch.list()] == [handle]
    assert ("list", "vexa", "vexa.bot=true") in api.calls
    await orch.stop(handle, timeout_s=9)
    assert ("delete", "vexa-bot-7", "vexa", 9) in api.calls
    assert ("delete_secret", "vexa-bot-7-token", "vexa") in api.calls and not api.secrets
    assert await orch.status(handle) is None
    await orch.stop(handle)  # 404 is fine
    assert "vbt_meeting-token" not in repr(SPEC)  # never logged with the spec


def test_orchestrator_selection_and_settings_aliases(tmp_path: Path):
    assert isinstance(create_orchestrator(_settings(ORCHESTRATOR="docker")), DockerOrchestrator)
    assert isinstance(create_orchestrator(_settings(ORCHESTRATOR="kubernetes")), KubernetesOrchestrator)
    assert isinstance(create_orchestrator(_settings()), ProcessOrchestrator)
    assert _settings(BOT_IMAGE="img:1").bot_image == "img:1"
    s = _settings(BOT_MANAGER_PORT=8181)
    assert s.resolved_callback_url() == "http://127.0.0.1:8181"
    assert s.whisper_live_url == "ws://127.0.0.1:9090/ws"


def test_transitions_table():
    assert check_transition("requested", "joining") is True
    assert check_transition("active", "active") is False
    for terminal in ("completed", "failed"):
        assert TRANSITIONS[terminal] == frozenset()
        with pytest.raises(IllegalTransition):
            check_transition(terminal, "active")
    for old, new in [("active", "joining"), ("stopping", "active"), ("awaiting_admission", "joining")]:
        with pytest.raises(IllegalTransition, match=f"{old} -> {new}"):
            check_transition(old, new)


async def test_manager_on_docker_standin(database_url, redis_url, tmp_path, make_user, db, redis):
    """The whole service with ORCHESTRATOR=docker, the engine being a stand-in."""
    _, token = await make_user()
    engine = DockerEngineStandIn()
    settings = make_settings(database_url, redis_url, tmp_path, ORCHESTRATOR="docker", BOT_STOP_TIMEOUT_S=0.2)
    orch = DockerOrchestrator(settings, client=engine)
    async with (
        serve_app(create_app(settings, orchestrator=orch)) as base,
        httpx.AsyncClient(base_url=base) as c,
    ):
        resp = await c.post(
            "/bots", json={"platform": "zoom", "native_meeting_id": "123456789"}, headers={"X-API-Key": token}
        )
        assert resp.status_code == 201 and resp.json()["bot_container_id"] == "cid0001"
        run_kwargs = next(call[1] for call in engine.calls if call[0] == "run")
        cfg = json.loads(run_kwargs["environment"]["BOT_CONFIG"])
        assert cfg["meeting_id"] == resp.json()["id"] and "token" not in cfg
        assert token not in json.dumps(run_kwargs)  # the user's key never reaches the bot
        assert run_kwargs["environment"]["BOT_TOKEN"].startswith("vbt_")
        assert run_kwargs["labels"]["vexa.user_id"] == str(resp.json()["user_id"])
        bots = (await c.get("/bots/status", headers={"X-API-Key": token})).json()["running_bots"]
        assert [b["container_id"] for b in bots] == ["cid0001"]
        # The container vanishes without a report (engine-side crash): reconcile marks the meeting failed.
        engine.containers_by_id.clear()

        async def failed():
            async with db.engine.connect() as conn:
                row = (
                    await conn.execute(text("SELECT status, data->>'completion_reason' FROM meetings"))
                ).one()
            return row if row[0] == "failed" else None

        assert tuple(await wait_for(failed, what="reconcile")) == ("failed", "bot_crashed")


async def test_a_new_manager_keeps_or_stops_the_containers_it_finds(
    database_url, redis_url, tmp_path, make_user, db, redis
):
    """Containers outlive their manager: the next one keeps those of active meetings, stops the rest."""
    _, token = await make_user()
    engine = DockerEngineStandIn()
    settings = make_settings(database_url, redis_url, tmp_path, ORCHESTRATOR="docker")
    ids = []
    async with (
        serve_app(create_app(settings, orchestrator=DockerOrchestrator(settings, client=engine))) as base,
        httpx.AsyncClient(base_url=base) as c,
    ):
        for native in ("123456789", "987654321"):
            resp = await c.post(
                "/bots", json={"platform": "zoom", "native_meeting_id": native}, headers={"X-API-Key": token}
            )
            assert resp.status_code == 201
            ids.append(resp.json()["id"])
    kept, ended = ids
    async with db.engine.begin() as conn:  # both bots joined; the second meeting ended meanwhile
        await conn.execute(text("UPDATE meetings SET status = 'active'"))
        await conn.execute(text("UPDATE meetings SET status = 'completed' WHERE id = :m"), {"m": ended})
    assert {c.status for c in engine.containers_by_id.values()} == {"running"}

    async with serve_app(create_app(settings, orchestrator=DockerOrchestrator(settings, client=engine))):
        await wait_for(lambda: _stopped(engine, "cid0002"), what="the ended meeting's container stopped")
        await asyncio.sleep(1.2)  # two more reconcile passes
        assert engine.containers_by_id["cid0001"].status == "running"
        async with db.engine.connect() as conn:
            status = (
                await conn.execute(text("SELECT status FROM meetings WHERE id = :m"), {"m": kept})
            ).scalar_one()
        assert status == "active"


async def _stopped(engine: DockerEngineStandIn, cid: str) -> bool:
    return any(call[:2] == ("stop", cid) for call in engine.calls)
