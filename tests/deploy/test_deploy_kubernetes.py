"""Every manifest each Kustomize overlay renders is valid against the Kubernetes schemas.

Rendered with ``kubectl kustomize`` (Debian's kubectl, installed by scripts/setup.sh; no cluster
needed) and validated offline with kubernetes-validate's bundled schemas, strict mode (unknown
fields fail). Then the wiring the README promises is checked on the rendered objects.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
OVERLAYS = ["dev", "production", "gpu"]
# The oldest Kubernetes release still maintained upstream when this was written, and the newest
# the validator carries: the manifests must be valid on both.
VERSIONS = ["1.31.0", kubernetes_validate.utils.latest_version()]
SECRET_NAMES = ("TOKEN", "SECRET", "PASSWORD", "DATABASE_URL", "REDIS_URL")
SERVICES = ["vexa-admin-api", "vexa-api-gateway", "vexa-collector", "vexa-transcription", "vexa-bot-manager"]


def render(overlay: str, tmp_path: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the overlays (scripts/setup.sh installs Debian's kubectl)"
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    example = tree / "overlays" / "dev" / "secrets.env.example"
    (tree / "overlays" / "dev" / "secrets.env").write_text(example.read_text())
    out = subprocess.run(
        [kubectl, "kustomize", str(tree / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_manifest_is_schema_valid(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay, tmp_path)
    assert len(docs) >= 15
    for version in VERSIONS:
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']} invalid on {version}: {exc}")


def test_the_validator_rejects_a_broken_manifest(tmp_path: Path) -> None:
    """Guard for the test above: a misspelt field fails strict validation."""
    deployment = by_kind(render("production", tmp_path), "Deployment")["vexa-api-gateway"]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_production_covers_the_stack_with_probes_resources_and_secrets(tmp_path: Path) -> None:
    docs = render("production", tmp_path)
    assert {d["metadata"]["namespace"] for d in docs} == {"vexa"}
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    assert set(SERVICES) <= set(deployments) and set(SERVICES) <= set(services)
    assert "vexa-migrate" in by_kind(docs, "Job")
    assert not by_kind(docs, "Secret"), "production must use the existing Secret, not generate one"
    replicas = {name: d["spec"]["replicas"] for name, d in deployments.items()}
    assert replicas["vexa-api-gateway"] == 2 and replicas["vexa-collector"] == 2
    assert replicas["vexa-transcription"] == 4
    for name in SERVICES:
        c = container(deployments[name])
        assert c["readinessProbe"] and c["livenessProbe"], name
        assert c["resources"]["requests"] and c["resources"]["limits"], name
        secret_env = [e for e in c.get("env", []) if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]]
        assert secret_env and all(
            e["valueFrom"]["secretKeyRef"]["name"] == "vexa-secrets" for e in secret_env
        )
        for e in c.get("env", []):
            if any(word in e["name"] for word in SECRET_NAMES):
                assert "valueFrom" in e, f"{name}: {e['name']} given as a plain value"
        template = deployments[name]["spec"]["template"]
        assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    # The transcription replica leaves the Service while full: its readiness probe is /health.
    probe = container(deployments["vexa-transcription"])["readinessProbe"]["httpGet"]
    assert probe == {"path": "/health", "port": "health"}
    # The gateway's public Service exposes the API only, not the metrics port.
    assert [p["name"] for p in services["vexa-api-gateway"]["spec"]["ports"]] == ["http"]


def test_bot_manager_rbac_is_least_privilege(tmp_path: Path) -> None:
    docs = render("production", tmp_path)
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    pods, secrets = by_kind(docs, "Role")["vexa-bot-manager"]["rules"]
    assert pods == {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "delete", "get", "list", "watch"],
    }
    # Per-bot token Secrets: made, owned by their pod, deleted; never read back or listed.
    assert secrets == {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete", "patch"]}
    binding = by_kind(docs, "RoleBinding")["vexa-bot-manager"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "vexa-bot-manager", "namespace": "vexa"}
    ]
    pod = by_kind(docs, "Deployment")["vexa-bot-manager"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "vexa-bot-manager"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["ORCHESTRATOR"]["value"] == "kubernetes"
    assert env["K8S_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_dev_brings_datastores_and_a_generated_secret(tmp_path: Path) -> None:
    docs = render("dev", tmp_path)
    assert {"vexa-postgres", "vexa-redis"} <= set(by_kind(docs, "StatefulSet"))
    (secret,) = by_kind(docs, "Secret").values()
    assert secret["metadata"]["name"].startswith("vexa-secrets-")  # hashed: pods roll when it changes
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for d in by_kind(docs, "Deployment").values()
        for e in container(d).get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {secret["metadata"]["name"]}


def test_gpu_overlay_pins_one_gpu_per_transcription_pod(tmp_path: Path) -> None:
    docs = render("gpu", tmp_path)
    c = container(by_kind(docs, "Deployment")["vexa-transcription"])
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["DEVICE"] == "cuda" and env["HEALTH_PORT"] == "9091"
    assert c["image"] == "vexa:cuda"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"


def _storage_wiring(docs: list[dict]) -> tuple[dict[str, str], dict[str, dict[str, dict]], str]:
    """(the ConfigMap's storage settings, per service its S3 key env, the bot pods' Secret)."""
    config = by_kind(docs, "ConfigMap")["vexa-config"]["data"]
    deployments = by_kind(docs, "Deployment")
    keys: dict[str, dict[str, dict]] = {}
    for name in ("vexa-bot-manager", "vexa-collector"):
        c = container(deployments[name])
        assert {"configMapRef": {"name": "vexa-config"}} in c["envFrom"], name
        env = {e["name"]: e for e in c["env"]}
        assert not {"STORAGE_BACKEND", "RECORDINGS_DIR"} & set(env), f"{name}: storage from the ConfigMap"
        keys[name] = {k: env[k]["valueFrom"]["secretKeyRef"] for k in ("S3_ACCESS_KEY", "S3_SECRET_KEY")}
    bot_manager = {e["name"]: e for e in container(deployments["vexa-bot-manager"])["env"]}
    return config, keys, bot_manager["K8S_STORAGE_CREDENTIALS_FROM"]["value"]


def test_recordings_go_to_object_storage_with_keys_from_the_secret(tmp_path: Path) -> None:
    """No pod-local disk for recordings: bots, bot-manager and collectors share one S3 bucket."""
    docs = render("production", tmp_path)
    config, keys, bot_secret = _storage_wiring(docs)
    assert config["STORAGE_BACKEND"] == "s3" and config["S3_BUCKET"] and "S3_ENDPOINT" not in config
    for refs in keys.values():
        # Optional: with workload identity (IRSA and the like) no keys are needed.
        assert refs == {
            "S3_ACCESS_KEY": {"name": "vexa-secrets", "key": "S3_ACCESS_KEY", "optional": True},
            "S3_SECRET_KEY": {"name": "vexa-secrets", "key": "S3_SECRET_KEY", "optional": True},
        }
    assert bot_secret == "vexa-secrets", "bot pods read the keys from the same Secret, by reference"


def test_dev_runs_minio_and_everyone_uses_it(tmp_path: Path) -> None:
    docs = render("dev", tmp_path)
    config, keys, bot_secret = _storage_wiring(docs)
    (secret,) = by_kind(docs, "Secret").values()
    assert {"S3_ACCESS_KEY", "S3_SECRET_KEY"} <= set(secret["data"])
    assert config["S3_ENDPOINT"] == "http://vexa-minio:9000"
    assert bot_secret == secret["metadata"]["name"], "the hashed name of the generated Secret"
    assert all(ref["name"] == secret["metadata"]["name"] for refs in keys.values() for ref in refs.values())
    minio = by_kind(docs, "StatefulSet")["vexa-minio"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(minio)["env"]}
    assert env == {
        "MINIO_ROOT_USER": {"name": secret["metadata"]["name"], "key": "S3_ACCESS_KEY"},
        "MINIO_ROOT_PASSWORD": {"name": secret["metadata"]["name"], "key": "S3_SECRET_KEY"},
    }
    assert by_kind(docs, "Service")["vexa-minio"]["spec"]["ports"][0]["port"] == 9000
