"""`vexa logs -f` follows a log across appends and rotation; status reads a dead stack as stopped."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from vexa.runstate import ProcessState, StackState
from vexa.stack_status import follow, last_error_line, render_status, tail


def test_follow_prints_what_is_appended_and_survives_rotation(tmp_path: Path):
    log = tmp_path / "gateway.log"
    log.write_text("old line\n")

    def writer() -> None:
        time.sleep(0.3)
        with open(log, "a") as f:
            f.write("new line\n")
        time.sleep(0.3)
        log.rename(tmp_path / "gateway.log.1")  # rotated: a new file takes the name
        log.write_text("after rotation\n")

    thread = threading.Thread(target=writer)
    thread.start()
    seen = ""
    deadline = time.monotonic() + 10
    for chunk in follow(log, poll_s=0.05):
        seen += chunk
        if "after rotation" in seen or time.monotonic() > deadline:
            break
    thread.join()
    assert "old line" not in seen  # following starts at the end, like tail -f
    assert "new line" in seen and "after rotation" in seen


def test_status_of_a_home_whose_stack_is_gone(tmp_path: Path):
    report, running = render_status(tmp_path)
    assert not running and "No stack has run" in report

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "collector.log").write_text(
        "2026-01-01 10:00:00 INFO collector x: ready\n"
        "2026-01-01 10:00:05 ERROR collector x: database unavailable\n"
        "2026-01-01 10:00:06 INFO collector x: retrying\n"
    )
    state = StackState(supervisor_pid=999_999_999)
    state.processes["collector"] = ProcessState(
        port=8123, pid=999_999_999, started_at=time.time(), log=str(logs / "collector.log")
    )
    state.save(tmp_path)
    report, running = render_status(tmp_path)
    assert not running and "not running" in report
    row = next(line for line in report.splitlines() if line.startswith("collector"))
    assert "stopped" in row and "8123" in row and "database unavailable" in row
    assert last_error_line(logs / "collector.log").endswith("database unavailable")
    assert tail(logs / "collector.log", 1).endswith("retrying")
