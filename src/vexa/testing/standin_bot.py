"""STAND-IN BOT for the bot-manager tests and the chaos soak: a test double for the real browser bot.

The real bot (``python -m vexa bot``, Chromium) is tested in tests/bot and end to
end elsewhere; here the manager only needs something that speaks the same
contract: reads ``BOT_CONFIG`` and ``BOT_TOKEN``, POSTs status callbacks with ``X-Bot-Token`` and
obeys Redis commands. Behaviour is chosen by ``argv[1]``:

- ``lifecycle``: joining -> awaiting_admission -> active; on ``leave`` reports
  completed/stopped; on ``end_meeting`` (test-only command) completed/meeting_ended.
- ``crash``: joining, then exits with code 3 without a final report.
- ``deaf``: joining, then ignores every command until killed.

It records its config and every command it receives in Redis
(``standin:{meeting_id}:config`` / ``standin:{meeting_id}:commands``) so tests
can assert what the manager sent. Lives at most ``STANDIN_MAX_LIFETIME_S`` (60 s
by default), so nothing can linger. Like the real bot it rides out a Redis restart
(resubscribes) and a bot-manager restart (retries its status callbacks).
"""

from __future__ import annotations

import json
import os
import sys
import time

import httpx
import redis

MAX_LIFETIME_S = float(os.environ.get("STANDIN_MAX_LIFETIME_S", "60"))
RETRY_FOR_S = 30.0


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "lifecycle"
    cfg = json.loads(os.environ["BOT_CONFIG"])
    mid = cfg["meeting_id"]
    r = redis.Redis.from_url(cfg["redis_url"], decode_responses=True)
    channel = f"bot_commands:meeting:{mid}"
    pubsub = r.pubsub()
    pubsub.subscribe(channel)
    token = os.environ["BOT_TOKEN"]  # like the real bot: the meeting token travels apart from BOT_CONFIG
    # Recorded (test double only) so tests can present the token and check what the manager sent.
    r.set(f"standin:{mid}:config", json.dumps({**cfg, "bot_token_env": token}), ex=3600)
    r.set(f"standin:{mid}:pid", os.getpid(), ex=3600)
    url = cfg["callback_url"].rstrip("/") + "/bots/internal/callback/status"
    client = httpx.Client(timeout=5.0, headers={"X-Bot-Token": token})

    def retrying(call):  # type: ignore[no-untyped-def]
        give_up = time.monotonic() + RETRY_FOR_S
        while True:
            try:
                return call()
            except (httpx.TransportError, redis.ConnectionError):
                if time.monotonic() > give_up:
                    raise
                time.sleep(0.5)

    def report(status: str, **extra: object) -> None:
        resp = retrying(lambda: client.post(url, json={"meeting_id": mid, "status": status, **extra}))
        retrying(lambda: r.rpush(f"standin:{mid}:reports", f"{status}:{resp.status_code}"))

    report("joining")
    if mode == "crash":
        return 3
    if mode == "lifecycle":
        report("awaiting_admission")
        report("active", participants=["Alice"])
    deadline = time.monotonic() + MAX_LIFETIME_S
    while time.monotonic() < deadline:
        try:
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        except redis.ConnectionError:  # Redis restarted: subscribe again once it is back
            time.sleep(0.5)
            pubsub = r.pubsub()
            try:
                pubsub.subscribe(channel)
            except redis.ConnectionError:
                pass
            continue
        if not message:
            continue
        retrying(lambda m=message: r.rpush(f"standin:{mid}:commands", m["data"]))
        if mode != "lifecycle":
            continue
        command = json.loads(message["data"])
        if command.get("action") == "leave":
            report("completed", reason="stopped", participants=["Alice"])
            return 0
        if command.get("action") == "end_meeting":
            report("completed", reason="meeting_ended", participants=["Alice", "Bob"])
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
