"""A short fault-injection soak (vexa.testing.chaos): the whole pipeline through kills and restarts.

Its own embedded PostgreSQL and Valkey (AOF on), because it restarts them; collectors and
the bot-manager as real processes; STAND-IN bots (vexa.testing.standin_bot). bench/chaos.py
runs the same soak at length.
"""

from __future__ import annotations

import pytest

from vexa.testing.chaos import SoakConfig, soak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


async def test_nothing_lost_nothing_stale_through_kills_and_restarts(tmp_path):
    tmp_path.chmod(0o755)
    report = await soak(
        SoakConfig(
            work_dir=tmp_path,
            sessions=20,
            meetings=4,
            drafts=3,
            interval_s=1.0,
            collector_kills=5,
            old_maxlen=1200,
            phase_s=2.5,
        )
    )
    print("\n".join(report.lines()))
    assert report.collector_kills >= 5
    assert report.outage_stream_length > report.old_maxlen
    assert report.segments > 100 and report.sessions >= 20
    assert (report.lost, report.duplicated, report.stale, report.unexpected) == (0, 0, 0, 0)
    assert (report.db_lost, report.db_stale) == (0, 0)
    assert report.wrong_status == 0 and report.orphans == 0
    assert report.dead_letters == 0 and report.publisher_dropped == 0
    assert set(report.recovery_s) >= {"Valkey restart", "PostgreSQL restart", "bot-manager SIGKILL"}
