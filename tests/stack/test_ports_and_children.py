"""Fixed ports, the home lock and parent-death, each on its own (no stack needed)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from vexa.embedded import free_port
from vexa.ports import PortInUse, claim_port
from vexa.runstate import StackAlreadyRunning, StackLock, running_supervisor


def _time_wait_on(port: int) -> int:
    return sum(
        1
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_TIME_WAIT and c.laddr and c.laddr.port == port
    )


def _leave_time_wait(port: int) -> None:
    """Serve one connection and close it from the server side, as a stopping service does."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server closes first: its side goes to TIME_WAIT
        client.recv(1)
        client.close()


def test_time_wait_leftovers_do_not_move_a_port():
    port = free_port()
    _leave_time_wait(port)
    assert _time_wait_on(port) >= 1
    # The old check (a bind without SO_REUSEADDR) took this port for busy and moved the service.
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    assert claim_port(port, "GATEWAY_PORT") == port


def test_a_port_held_by_another_program_is_a_clear_error():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse) as info:
            claim_port(port, "GATEWAY_PORT")
        assert f"port {port}" in str(info.value)
        assert "GATEWAY_PORT" in str(info.value)
        # Throwaway stacks (tests, the demo) may ask to move instead.
        moved = claim_port(port, "GATEWAY_PORT", any_free=True)
        assert moved != port


def test_a_second_holder_of_the_home_lock_is_refused(tmp_path: Path):
    lock = StackLock(tmp_path).acquire()
    try:
        assert running_supervisor(tmp_path) == os.getpid()
        with pytest.raises(StackAlreadyRunning) as info:
            StackLock(tmp_path).acquire()
        assert str(os.getpid()) in str(info.value) and str(tmp_path) in str(info.value)
    finally:
        lock.release()
    assert running_supervisor(tmp_path) is None
    StackLock(tmp_path).acquire().release()  # free again


def test_the_lock_of_a_killed_supervisor_is_not_stale(tmp_path: Path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time; from vexa.runstate import StackLock; StackLock(__import__('pathlib').Path("
            f"{str(tmp_path)!r})).acquire(); print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        assert running_supervisor(tmp_path) == holder.pid
        holder.kill()
        holder.wait(5)
        assert running_supervisor(tmp_path) is None  # the kernel dropped the lock with the process
        StackLock(tmp_path).acquire().release()
    finally:
        holder.kill()


def test_children_die_with_a_sigkilled_parent():
    parent_code = textwrap.dedent(
        """
        import subprocess, sys, time
        from vexa.children import die_with_parent
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 preexec_fn=die_with_parent(), start_new_session=True)
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        child = psutil.Process(int(parent.stdout.readline()))
        assert child.is_running()
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and child.is_running() and child.status() != "zombie":
            time.sleep(0.02)
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        parent.kill()
