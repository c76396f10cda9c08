"""The compose scale-out and monitoring wiring (parsed with PyYAML: no Docker engine here).

`docker compose config` needs the compose plugin, which this machine's Docker client lacks, so
the file is checked as data: replicas, Traefik routes, the monitoring profile, and that every
/metrics endpoint Prometheus scrapes exists and none is routed to the public ports.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_two_gateways_and_two_collectors_behind_traefik() -> None:
    services = load("docker-compose.yml")["services"]
    routes = load("traefik/dynamic.yml")["http"]
    for router, replicas, port in (
        ("gateway", ["api-gateway-0", "api-gateway-1"], 8000),
        ("collector", ["transcription-collector-0", "transcription-collector-1"], 8123),
    ):
        for name in replicas:
            svc = services[name]
            assert "ports" not in svc, f"{name} is reached through Traefik only"
            assert str(port) in " ".join(svc["healthcheck"]["test"])
        lb = routes["services"][router]["loadBalancer"]
        assert [s["url"] for s in lb["servers"]] == [f"http://{n}:{port}" for n in replicas]
        assert lb["healthCheck"]["path"] == "/health"
        assert "!Path(`/metrics`)" in routes["routers"][router]["rule"]
    gateway_env = services["api-gateway-0"]["environment"]
    assert gateway_env["TRANSCRIPTION_COLLECTOR_URL"] == "http://traefik:8123"
    assert gateway_env["GATEWAY_METRICS_PORT"] == "9102"
    # Each collector is its own consumer (hostname-pid by default): no CONSUMER_NAME pinned.
    assert "CONSUMER_NAME" not in services["transcription-collector-0"]["environment"]


def test_monitoring_profile_scrapes_every_service() -> None:
    services = load("docker-compose.yml")["services"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    assert services["prometheus"]["ports"] == ["127.0.0.1:9095:9090"]  # loopback only
    assert services["grafana"]["ports"] == ["127.0.0.1:3000:3000"]
    assert (
        "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    )
    jobs = {
        j["job_name"]: j["static_configs"][0]["targets"]
        for j in load("prometheus/prometheus.yml")["scrape_configs"]
    }
    assert jobs == {
        "api-gateway": ["api-gateway-0:9102", "api-gateway-1:9102"],
        "transcription-collector": ["transcription-collector-0:8123", "transcription-collector-1:8123"],
        "transcription": ["transcription-0:9091", "transcription-1:9091"],
        "bot-manager": ["bot-manager:8080"],
        "admin-api": ["admin-api:8001"],
    }
    aliases = {
        alias
        for svc in services.values()
        if isinstance(svc.get("networks"), dict)
        for alias in svc["networks"]["vexa"].get("aliases", [])
    }
    for targets in jobs.values():
        for target in targets:
            host = target.split(":")[0]
            assert host in services or host in aliases, target


def test_grafana_dashboard_queries_the_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "vexa.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "vexa_transcription_commit_latency_seconds_bucket",
        "vexa_transcription_slots_in_use",
        "vexa_collector_persist_latency_seconds_bucket",
        "vexa_collector_stream_lag",
        "vexa_collector_stream_pending",
        "vexa_collector_dead_letters",
        "vexa_gateway_ws_subscriptions",
        "vexa_gateway_ws_dropped_total",
        "vexa_bots",
        "vexa_webhook_deliveries_total",
    ):
        assert metric in exprs, metric
    datasource = load("grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    assert datasource["uid"] == dashboard["panels"][0]["datasource"]["uid"]
    assert datasource["url"] == "http://prometheus:9090"
