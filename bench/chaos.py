"""Fault-injection soak of the transcript pipeline (see vexa.testing.chaos); prints its figures.

    PYTHONPATH=src .venv/bin/python bench/chaos.py                 # 20 sessions, 4 meetings
    PYTHONPATH=src .venv/bin/python bench/chaos.py --sessions 40 --meetings 8 --old-maxlen 100000

Everything runs on loopback in a temporary folder: embedded PostgreSQL and Valkey
(AOF on), collectors and a bot-manager as real processes, stand-in bots.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

from vexa.testing.chaos import SoakConfig, soak


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--meetings", type=int, default=4)
    parser.add_argument("--drafts", type=int, default=3, help="drafts before each segment is completed")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between a session's messages")
    parser.add_argument("--collector-kills", type=int, default=6)
    parser.add_argument("--old-maxlen", type=int, default=2_000, help="the producer's former MAXLEN ~")
    parser.add_argument("--phase", type=float, default=4.0, help="mean seconds between faults")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="keep logs and data here instead of a temporary folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="vexa-chaos-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        work.chmod(0o755)
        config = SoakConfig(
            work_dir=work,
            sessions=args.sessions,
            meetings=args.meetings,
            drafts=args.drafts,
            interval_s=args.interval,
            collector_kills=args.collector_kills,
            old_maxlen=args.old_maxlen,
            phase_s=args.phase,
            seed=args.seed,
        )
        report = asyncio.run(soak(config))
    for line in report.lines():
        print(line)
    print("EXACT" if report.exact else "MISMATCH")
    return 0 if report.exact else 1


if __name__ == "__main__":
    sys.exit(main())
