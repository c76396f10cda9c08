"""The compose file and Traefik config parse and wire the replicas as documented (no Docker here)."""

from __future__ import annotations

from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_compose_has_the_stack_with_documented_ports() -> None:
    services = load("docker-compose.yml")["services"]
    expected = {
        "postgres",
        "redis",
        "migrate",
        "api-gateway-0",
        "api-gateway-1",
        "admin-api",
        "bot-manager",
        "transcription-collector-0",
        "transcription-collector-1",
        "traefik",
    }
    assert expected <= set(services)
    assert services["postgres"]["ports"] == ["127.0.0.1:5438:5432"]
    # Gateways and collectors are reached through Traefik, which publishes their documented ports.
    # Transcription only on loopback: bots reach it over the compose network.
    assert services["traefik"]["ports"] == ["8056:8000", "8123:8123", "127.0.0.1:9090:9090"]
    assert services["admin-api"]["ports"] == ["8057:8001"]
    for name in ("transcription-cpu-0", "transcription-gpu-0"):  # bots only, unless the operator opts in
        assert services[name]["environment"]["WL_STANDALONE"] == "${WL_STANDALONE:-false}"
    for name in ("api-gateway-0", "transcription-collector-0"):
        assert "ports" not in services[name]
    for name in ("api-gateway-0", "admin-api", "bot-manager", "transcription-collector-0"):
        assert services[name]["command"][:3] == ["vexa", "serve", services[name]["command"][2]]
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["bot-manager"]["environment"]["WHISPER_LIVE_URL"] == "ws://traefik:9090/ws"


def test_transcription_replicas_pin_one_gpu_each_and_share_only_redis() -> None:
    services = load("docker-compose.yml")["services"]
    replicas = {
        k: v for k, v in services.items() if k.startswith(("transcription-cpu-", "transcription-gpu-"))
    }
    assert set(replicas) == {
        "transcription-cpu-0",
        "transcription-cpu-1",
        "transcription-gpu-0",
        "transcription-gpu-1",
    }
    for name, svc in replicas.items():
        index = name[-1]
        assert svc["command"] == ["vexa", "serve", "transcription", "--host", "0.0.0.0", "--port", "9090"]
        assert svc["networks"]["vexa"]["aliases"] == [f"transcription-{index}"]
        env = svc["environment"]
        assert env["HEALTH_PORT"] == "9091" and env["REDIS_URL"].startswith("redis://redis")
        assert "DATABASE_URL" not in env and "volumes" not in svc  # nothing shared but Redis
        assert "9091" in " ".join(svc["healthcheck"]["test"])
        if "gpu" in name:
            assert svc["profiles"] == ["gpu"] and env["DEVICE"] == "cuda"
            (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
            assert device["device_ids"] == [index] and device["capabilities"] == ["gpu"]
        else:
            assert svc["profiles"] == ["cpu"] and env["DEVICE"] == "cpu"
            assert "reservations" not in svc["deploy"]["resources"]


def test_traefik_routes_websockets_to_every_replica_with_health_checks() -> None:
    static = load("traefik/traefik.yml")
    assert static["entryPoints"]["transcription"]["address"] == ":9090"
    assert static["entryPoints"]["web"]["address"] == ":8000"
    assert static["entryPoints"]["collector"]["address"] == ":8123"
    lb = load("traefik/dynamic.yml")["http"]["services"]["transcription"]["loadBalancer"]
    assert lb["healthCheck"] == {"path": "/health", "port": 9091, "interval": "5s", "timeout": "2s"}
    assert [s["url"] for s in lb["servers"]] == ["http://transcription-0:9090", "http://transcription-1:9090"]
    compose = load("docker-compose.yml")["services"]["traefik"]
    assert "./traefik/dynamic.yml:/etc/traefik/dynamic.yml:ro" in compose["volumes"]


def test_dockerfile_installs_models_at_build_time() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "vexa models install --model base" in text and "HF_HUB_OFFLINE=1" in text
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in text
