"""A process tree's memory as if it ran alone: the distinct physical pages its processes map.

Why: PSS splits every shared page among ALL processes that map it, so one bot's PSS falls when
anything else on the machine maps the same files (another bot, another developer's Chromium or
node) and rises when they exit: on a shared machine the same bot measures 300 or 450 MiB from
one minute to the next, and a flag's effect drowns in that. Counting the distinct page frames
that the bot's own processes map (each once, however many of them share it) gives the PSS the
bot would have alone on the machine, whatever else runs. Reading page frame numbers from
/proc/PID/pagemap needs root (CAP_SYS_ADMIN); without it this returns None.
"""

from __future__ import annotations

import numpy as np
import psutil

PAGE = 4096
_PRESENT = np.uint64(1 << 63)
_PFN_MASK = np.uint64((1 << 55) - 1)


def _resident_ranges(pid: int) -> list[tuple[int, int]]:
    """Address ranges of the mappings that have resident pages (from /proc/PID/smaps)."""
    ranges: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            if line[0] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                start, end = line.split(" ", 1)[0].split("-")
                current = (int(start, 16), int(end, 16))
            elif line.startswith("Rss:") and current is not None and line.split()[1] != "0":
                ranges.append(current)
    return ranges


def _frames(pid: int) -> np.ndarray:
    chunks = []
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for start, end in _resident_ranges(pid):
            pagemap.seek(start // PAGE * 8)
            entries = np.frombuffer(pagemap.read((end - start) // PAGE * 8), dtype="<u8")
            present = entries[(entries & _PRESENT) != 0] & _PFN_MASK
            chunks.append(present)
    return np.concatenate(chunks) if chunks else np.zeros(0, np.uint64)


def tree_alone_mib(procs: list[psutil.Process]) -> float | None:
    """MiB of distinct physical pages mapped by ``procs`` together; None without root's view."""
    frames = []
    for p in procs:
        try:
            f = _frames(p.pid)
        except (OSError, ValueError):
            continue  # exited meanwhile
        if len(f) and not f.any():
            return None  # page frame numbers read as 0: not privileged
        frames.append(f)
    if not frames:
        return None
    return len(np.unique(np.concatenate(frames))) * PAGE / 2**20
