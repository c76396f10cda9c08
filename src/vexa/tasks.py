"""Stopping a child task without losing our own cancellation.

Why a helper: the usual ``task.cancel(); with suppress(CancelledError): await task`` swallows the
*caller's* cancellation too, when the caller is cancelled while it waits there, and a cancelled
loop then runs on. The collector's persister did exactly that: stopped while it released its
meeting locks (cancelling their renewer), it kept persisting, and the service's shutdown waited
for it forever (tests/collector/test_collector_process.py, about 1 run in 20 on a loaded machine).
``asyncio.wait`` neither raises the child's outcome nor hides the caller's cancellation.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("vexa.tasks")


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel these tasks and wait until every one has finished. What one of them ended with is
    not raised (the caller is stopping it, and a reader's closed connection is no news): it is
    only logged, at debug level."""
    pending = {t for t in tasks if t is not None}
    if not pending:
        return
    for task in pending:
        task.cancel()
    await asyncio.wait(pending)
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            log.debug("%s ended with %r while being stopped", name, task.exception())


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was asked to stop and something below swallowed it.

    Why a worker loop calls this between rounds: once a task's CancelledError has been caught and
    dropped somewhere under it (a library's cleanup, an old ``suppress(CancelledError)``), its
    later awaits run normally, and a ``while True`` loop never stops; the request stays counted in
    ``Task.cancelling()``. The collector's persister was seen looping on after its shutdown this
    way, under load, with ``cancel_and_wait`` already in place.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        log.warning("%s: its cancellation was swallowed below it; stopping now", task.get_name())
        raise asyncio.CancelledError
