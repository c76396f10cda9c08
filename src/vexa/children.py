"""Child processes that die with the process that started them.

A supervisor killed with SIGKILL (the OOM killer, ``kill -9``, a closed
terminal) runs no cleanup code, so its children must be told by the kernel:
on Linux, ``prctl(PR_SET_PDEATHSIG)`` sends them a signal the moment their
parent thread exits. A process group would not help here, because nothing is
left to signal it. Elsewhere this is a no-op and only a clean stop stops
children.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no libc to load
        return None
    return libc.prctl


_PRCTL = _prctl()


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets ``sig`` when we die.

    ``sig`` is the child's own graceful stop (SIGTERM for our services, SIGINT
    for PostgreSQL's fast shutdown), so it still flushes what it holds. The
    setting survives ``exec`` and the uid change ``Popen(user=...)`` makes
    (Python applies that before calling ``preexec_fn``). Returns None where the
    platform has no such call, which ``Popen`` accepts as "nothing to run".

    The kernel watches the *thread* that forks, not the process: a child started
    from a worker thread would be killed when that thread ends. So outside the
    main thread this returns None too, and that child is stopped only cleanly.
    """
    if _PRCTL is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()
    prctl = _PRCTL

    def _arm() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: act as if it came in time
            os.kill(os.getpid(), sig)

    return _arm
