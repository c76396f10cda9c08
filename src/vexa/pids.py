"""Whether a pid names a live process, for state left on disk by processes that may be gone
(`vexa status` reading the stack's pids, a bot sweeping the profile folders of killed bots)."""

from __future__ import annotations

import os


def alive(pid: int | None) -> bool:
    """True while a process with this pid exists (someone else's counts: we may not signal it)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
