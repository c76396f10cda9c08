"""Give a process a fixed share of a CPU core (a Linux cgroup of its own), for scaling benches.

Whether two collectors in one consumer group do twice the work of one is a question about the
collector (do they contend on the stream, the hashes, the rows?), but on a 2-vCPU box it is
answered by the box: one collector plus Valkey and PostgreSQL already fill both cores. Capping
each collector at the same fraction of a core, well below what the box has, asks the question as
a machine with a core per collector would: each process gets the same CPU whether one or two run,
and the servers and the load generator keep the rest.

Needs root and a writable cgroup ``cpu`` controller (cgroup v1 ``cpu.cfs_quota_us`` or v2
``cpu.max``); says so in one line when it has neither.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class QuotaUnavailable(RuntimeError):
    """No writable cgroup CPU controller here (not root, or a read-only /sys/fs/cgroup)."""


def _own_cgroup() -> tuple[Path, bool]:
    """(the directory of this process's CPU cgroup, whether it is cgroup v2)."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    for line in lines:  # v1: "N:cpu,cpuacct:/path"
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            mount = CGROUP_ROOT / "cpu"
            if not mount.exists():
                mount = CGROUP_ROOT / controllers
            return mount / path.lstrip("/"), False
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # v2: "0::/path"
        path = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
        return CGROUP_ROOT / path.lstrip("/"), True
    raise QuotaUnavailable("no cgroup cpu controller is mounted under /sys/fs/cgroup")


@contextlib.contextmanager
def cpu_quota(pid: int, cores: float) -> Iterator[Path]:
    """Run ``pid`` (all its threads and later children) at most ``cores`` of a CPU until exit.

    On exit the process goes back to the parent cgroup (if still alive) and the cgroup is removed.
    """
    parent, v2 = _own_cgroup()
    group = parent / f"vexa-bench-{os.getpid()}-{pid}"
    quota = max(1000, int(cores * PERIOD_US))
    try:
        if v2:
            with contextlib.suppress(OSError):  # the parent may have it on already
                (parent / "cgroup.subtree_control").write_text("+cpu")
        group.mkdir()
        if v2:
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        (group / "cgroup.procs").write_text(str(pid))
    except OSError as exc:
        with contextlib.suppress(OSError):
            group.rmdir()
        raise QuotaUnavailable(
            f"cannot cap a process's CPU in {parent} ({exc.strerror}): run as root on a machine "
            "whose cgroup cpu controller is writable, or leave the quota option off"
        ) from exc
    try:
        yield group
    finally:
        for line in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):  # gone meanwhile
                (parent / "cgroup.procs").write_text(line)
        group.rmdir()


def throttled_s(group: Path) -> float:
    """Seconds the group's processes waited because the quota was spent (0 where not reported)."""
    stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
    if "throttled_time" in stat:  # v1, nanoseconds
        return int(stat["throttled_time"]) / 1e9
    return int(stat.get("throttled_usec", 0)) / 1e6
