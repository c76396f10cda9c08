"""cancel_and_wait stops a child task without swallowing the caller's own cancellation.

The regression it guards: the collector's persister, cancelled while it released its meeting
locks (waiting for their renewer to stop), swallowed that cancellation, kept persisting, and
the collector's shutdown waited for it forever (tests/collector/test_collector_process.py hung
about 1 run in 20 on a loaded machine)."""

from __future__ import annotations

import asyncio

import pytest

from vexa.collector.segments import MeetingLocks, persist_lock_key
from vexa.tasks import cancel_and_wait, raise_if_cancelled


async def test_the_child_is_stopped_and_its_error_not_raised():
    async def forever() -> None:
        await asyncio.Event().wait()

    async def fails() -> None:
        raise RuntimeError("boom")

    child, failed = asyncio.create_task(forever()), asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait(child, failed, None)
    assert child.cancelled()
    assert isinstance(failed.exception(), RuntimeError)


async def test_a_caller_cancelled_while_waiting_stays_cancelled():
    stopping = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopping.set()
            await asyncio.sleep(0.2)  # cleanup that takes a while

    child = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    caller = asyncio.create_task(cancel_and_wait(child))
    await stopping.wait()  # the caller now waits for the child's cleanup
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled()


async def test_persist_locks_release_keeps_the_callers_cancellation(redis):
    """The persister's path: cancelled inside ``MeetingLocks.release`` it must end, not go on."""
    locks = MeetingLocks(redis, ttl_ms=30_000)
    meeting_id = 987_654
    await redis.delete(persist_lock_key(meeting_id))
    assert await locks.acquire([meeting_id]) == [meeting_id]
    went_on = False

    async def persister_round() -> None:
        nonlocal went_on
        await locks.release()
        went_on = True  # a swallowed cancellation gets here, and the loop would run again
        await asyncio.sleep(3600)

    caller = asyncio.create_task(persister_round())
    await asyncio.sleep(0)  # release() has cancelled the renewer and waits for it to end
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(caller, 5)
    assert not went_on
    await redis.delete(persist_lock_key(meeting_id))


async def test_a_loop_stops_even_when_a_cancellation_was_swallowed_below_it():
    rounds = 0

    async def swallowing_round() -> None:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            pass  # what a library's cleanup may do

    async def worker() -> None:
        nonlocal rounds
        while True:
            await swallowing_round()
            rounds += 1
            raise_if_cancelled()

    task = asyncio.create_task(worker())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert rounds == 1
