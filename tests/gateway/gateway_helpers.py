"""Helpers shared by the gateway tests (a unique module name, so it never clashes with another folder's)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from vexa.embedded import free_port
from vexa.testing.processes import ServiceProcess


class HungServiceStandIn:
    """STAND-IN for a hung internal service: accepts TCP connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._held.append(conn)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


def start_gateway(env: dict[str, str], log: Path, **overrides: str) -> ServiceProcess:
    return ServiceProcess("gateway", free_port(), {**env, **overrides}, log_path=log).start()


class ClosedPort:
    """A loopback port bound but never listening: connections are refused, and no other
    process can take the port meanwhile (a merely "free" port could be reused by anyone)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()
