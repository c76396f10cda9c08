"""Ways of running bots (process, docker, kubernetes) behind one interface."""

from __future__ import annotations

from vexa.bot_manager.orchestrators.base import BotInfo, BotSpec, BotStartError, Orchestrator
from vexa.bot_manager.settings import BotManagerSettings

__all__ = ["BotInfo", "BotSpec", "BotStartError", "Orchestrator", "create_orchestrator"]


def create_orchestrator(settings: BotManagerSettings) -> Orchestrator:
    """The orchestrator named by ``ORCHESTRATOR``; engine clients are created lazily on first use."""
    if settings.orchestrator == "docker":
        from vexa.bot_manager.orchestrators.docker_engine import DockerOrchestrator

        return DockerOrchestrator(settings)
    if settings.orchestrator == "kubernetes":
        from vexa.bot_manager.orchestrators.kubernetes_pods import KubernetesOrchestrator

        return KubernetesOrchestrator(settings)
    from vexa.bot_manager.orchestrators.process import ProcessOrchestrator

    return ProcessOrchestrator(settings)
