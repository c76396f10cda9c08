"""Bots as Kubernetes Pods (``ORCHESTRATOR=kubernetes``), via the official client.

One Pod per bot in ``K8S_NAMESPACE`` with ``restartPolicy: Never`` (a bot that
ends must not be restarted into the same meeting), labels for finding it again,
and resource requests/limits. The bot's meeting token is never a plain env
value: each bot gets its own Secret (``<pod>-token``) that the Pod reads through
``secretKeyRef`` and that is owned by the Pod, so Kubernetes deletes it with the
Pod. The manager's ServiceAccount needs pods create/delete/get/list/watch and
secrets create/delete/patch there (deploy/k8s/). The client is blocking, so
calls run in threads; the API object is injectable so tests can pass a
stand-in for the cluster and assert the exact Pod requested.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from vexa.bot_manager.orchestrators.base import LABEL_MANAGED, BotInfo, BotSpec, BotStartError, Orchestrator
from vexa.bot_manager.settings import BotManagerSettings

log = logging.getLogger(__name__)

SECRET_KEY = "token"
S3_KEYS = (
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
)  # given by reference when K8S_STORAGE_CREDENTIALS_FROM names a Secret
_RUNNING_PHASES = frozenset({"Pending", "Running", "Unknown"})


def _k8s_label(value: str) -> str:
    """Label values: at most 63 of [A-Za-z0-9_.-]."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in value)
    return cleaned[:63].strip("-_.") or "x"


def _cpu(value: float) -> str:
    return f"{round(value * 1000)}m"


class KubernetesOrchestrator(Orchestrator):
    kind = "kubernetes"

    def __init__(self, settings: BotManagerSettings, api: Any | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.namespace = settings.k8s_namespace
        self._api = api

    @property
    def api(self) -> Any:
        if self._api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self._api = client.CoreV1Api()
        return self._api

    @staticmethod
    def secret_name(spec: BotSpec) -> str:
        return f"{spec.name}-token"

    def secret_manifest(self, spec: BotSpec) -> Any:
        """The ``V1Secret`` holding one bot's meeting token."""
        from kubernetes import client

        labels = {k: _k8s_label(v) for k, v in spec.labels().items()}
        labels["app.kubernetes.io/name"] = "vexa-bot"
        return client.V1Secret(
            api_version="v1",
            kind="Secret",
            type="Opaque",
            metadata=client.V1ObjectMeta(
                name=self.secret_name(spec), namespace=self.namespace, labels=labels
            ),
            string_data={SECRET_KEY: spec.bot_token},
        )

    def pod_manifest(self, spec: BotSpec) -> Any:
        """The ``V1Pod`` for one bot (the whole create request)."""
        from kubernetes import client

        s = self.settings
        labels = {k: _k8s_label(v) for k, v in spec.labels().items()}
        labels["app.kubernetes.io/name"] = "vexa-bot"
        return client.V1Pod(
            api_version="v1",
            kind="Pod",
            metadata=client.V1ObjectMeta(name=spec.name, namespace=self.namespace, labels=labels),
            spec=client.V1PodSpec(
                restart_policy="Never",
                termination_grace_period_seconds=int(max(s.bot_stop_timeout_s, 1)),
                containers=[
                    client.V1Container(
                        name="bot",
                        image=s.bot_image,
                        env=[
                            *self._storage_env(),
                            client.V1EnvVar(name="BOT_CONFIG", value=spec.bot_config_json),
                            client.V1EnvVar(
                                name="BOT_TOKEN",
                                value_from=client.V1EnvVarSource(
                                    secret_key_ref=client.V1SecretKeySelector(
                                        name=self.secret_name(spec), key=SECRET_KEY
                                    )
                                ),
                            ),
                        ],
                        resources=client.V1ResourceRequirements(
                            requests={"cpu": _cpu(s.bot_cpu_request), "memory": s.bot_memory_request},
                            limits={"cpu": _cpu(s.bot_cpu_limit), "memory": s.bot_memory_limit},
                        ),
                    )
                ],
            ),
        )

    def _storage_env(self) -> list[Any]:
        """The recording storage settings; S3 keys by reference to a Secret when one is named.

        A plain value would put the keys into every bot pod's spec, readable by anyone who may
        read pods; a ``secretKeyRef`` (optional: workload identity needs no keys) keeps them in
        the Secret. The bot-manager needs no right to read that Secret: the kubelet resolves it.
        """
        from kubernetes import client

        source = self.settings.k8s_storage_credentials_from
        env = self.settings.storage_env()
        out = [client.V1EnvVar(name=k, value=v) for k, v in env.items() if not (source and k in S3_KEYS)]
        if source and env["STORAGE_BACKEND"] != "local":
            out += [
                client.V1EnvVar(
                    name=key,
                    value_from=client.V1EnvVarSource(
                        secret_key_ref=client.V1SecretKeySelector(name=source, key=key, optional=True)
                    ),
                )
                for key in S3_KEYS
            ]
        return out

    @staticmethod
    def _api_exception() -> type[Exception]:
        from kubernetes.client.exceptions import ApiException

        return ApiException

    async def start(self, spec: BotSpec) -> str:
        api_exc = self._api_exception()
        secret = self.secret_name(spec)
        try:
            await asyncio.to_thread(
                self.api.create_namespaced_secret, namespace=self.namespace, body=self.secret_manifest(spec)
            )
        except api_exc as exc:
            raise BotStartError(f"kubernetes refused secret {secret}: {exc.status} {exc.reason}") from exc
        try:
            pod = await asyncio.to_thread(
                self.api.create_namespaced_pod, namespace=self.namespace, body=self.pod_manifest(spec)
            )
        except api_exc as exc:
            await self._delete_secret(secret)
            raise BotStartError(f"kubernetes refused pod {spec.name}: {exc.status} {exc.reason}") from exc
        await self._own_secret(secret, pod)
        log.info("created pod %s/%s for meeting %s", self.namespace, spec.name, spec.meeting_id)
        return spec.name

    async def _own_secret(self, secret: str, pod: Any) -> None:
        """Make the Pod the Secret's owner, so the cluster deletes it with the Pod (even if we never do)."""
        from kubernetes import client

        uid = getattr(getattr(pod, "metadata", None), "uid", None)
        if not uid:
            return
        owner = client.V1OwnerReference(api_version="v1", kind="Pod", name=pod.metadata.name, uid=uid)
        try:
            await asyncio.to_thread(
                self.api.patch_namespaced_secret,
                name=secret,
                namespace=self.namespace,
                body={
                    "metadata": {"ownerReferences": [client.ApiClient().sanitize_for_serialization(owner)]}
                },
            )
        except self._api_exception() as exc:  # stop() still deletes it
            log.warning("could not make pod %s own secret %s: %s", pod.metadata.name, secret, exc.reason)

    async def _delete_secret(self, name: str) -> None:
        try:
            await asyncio.to_thread(self.api.delete_namespaced_secret, name=name, namespace=self.namespace)
        except self._api_exception() as exc:
            if getattr(exc, "status", None) != 404:
                log.warning("kubernetes could not delete secret %s: %s", name, exc.reason)

    async def stop(self, handle: str, timeout_s: float = 10.0) -> None:
        api_exc = self._api_exception()
        try:
            await asyncio.to_thread(
                self.api.delete_namespaced_pod,
                name=handle,
                namespace=self.namespace,
                grace_period_seconds=int(max(timeout_s, 1)),
            )
        except api_exc as exc:
            if getattr(exc, "status", None) != 404:
                log.warning("kubernetes could not delete pod %s: %s", handle, exc.reason)
        await self._delete_secret(f"{handle}-token")

    @staticmethod
    def _info(pod: Any) -> BotInfo:
        phase = getattr(pod.status, "phase", None) or "Unknown"
        running = phase in _RUNNING_PHASES
        exit_code = None
        for cs in getattr(pod.status, "container_statuses", None) or []:
            terminated = getattr(getattr(cs, "state", None), "terminated", None)
            if terminated is not None:
                exit_code = terminated.exit_code
        created = pod.metadata.creation_timestamp
        return BotInfo(
            handle=pod.metadata.name,
            state="running" if running else "exited",
            labels=dict(pod.metadata.labels or {}),
            name=pod.metadata.name,
            created_at=created.isoformat() if hasattr(created, "isoformat") else created,
            exit_code=None if running else exit_code,
        )

    async def status(self, handle: str) -> BotInfo | None:
        api_exc = self._api_exception()
        try:
            pod = await asyncio.to_thread(self.api.read_namespaced_pod, name=handle, namespace=self.namespace)
        except api_exc as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise
        return self._info(pod)

    async def list(self) -> list[BotInfo]:
        pods = await asyncio.to_thread(
            self.api.list_namespaced_pod, namespace=self.namespace, label_selector=f"{LABEL_MANAGED}=true"
        )
        return [self._info(p) for p in pods.items]
