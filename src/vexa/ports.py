"""A service's port is part of its contract: take it, or say clearly why not.

The check binds with ``SO_REUSEADDR``, as uvicorn, PostgreSQL and Valkey do
themselves, so connections still in TIME_WAIT after a restart do not count as
"in use" (without it a stack restarted after a burst of requests would find
its own old ports busy). Only a socket that is really bound elsewhere makes
the port unavailable, and then the caller learns the port and the variable
that moves it. Moving to any free port is for throwaway stacks (tests, the
demo) that ask for it.
"""

from __future__ import annotations

import socket

from vexa.embedded import free_port


class PortInUse(RuntimeError):
    """A fixed port is held by another program."""

    def __init__(
        self, port: int, variable: str, host: str = "127.0.0.1", holder: str = "another program"
    ) -> None:
        self.port, self.variable = port, variable
        super().__init__(
            f"port {port} on {host} is already in use by {holder} (set by {variable}); "
            f"stop that program or set {variable} to a free port"
        )


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``port`` could be bound now; TIME_WAIT leftovers are ignored."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def claim_port(port: int, variable: str, *, host: str = "127.0.0.1", any_free: bool = False) -> int:
    """``port`` if it can be bound; else a free port when ``any_free``, else ``PortInUse``."""
    if port_is_free(port, host):
        return port
    if any_free:
        return free_port(host)
    raise PortInUse(port, variable, host)
