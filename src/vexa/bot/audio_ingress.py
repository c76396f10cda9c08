"""Audio from the page straight to this process: a loopback WebSocket the capture script sends to.

Why not the page's binding (which still carries speaker events, and audio when this socket
cannot be opened): a binding call goes through Chromium's browser process and the DevTools pipe
(vexa.bot.cdp), with the frame base64-encoded inside JSON at every hop; for audio, a few messages a
second per participant for the whole meeting, that route was about a third of a bot's CPU (then
through Playwright's node driver as well). Over this socket a frame is one binary
message: a 12-byte header and the 16-bit PCM the AudioWorklet produced.

Frame layout (little-endian): float64 capture time of its last sample (ms since the epoch),
uint32 tap number, then int16 mono 16 kHz samples. A tap is introduced, and re-introduced when
its participant is renamed, by a text message ``{"tap": n, "key": ..., "name": ..., "pid": ...}``.
The URL carries a random secret: nothing else on the machine can inject audio.
"""

from __future__ import annotations

import json
import logging
import secrets
import struct
from collections.abc import Callable

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("vexa.bot.audio_ingress")

HEADER = struct.Struct("<dI")

AudioSink = Callable[[str, str, str, bytes, float], None]
"""``(key, name, participant id, int16 PCM, capture end ms)``: ``AudioRouter.on_audio``."""


class AudioIngress:
    """The page's end of the audio path: one loopback WebSocket server per bot."""

    def __init__(self, sink: AudioSink) -> None:
        self.sink = sink
        self.secret = secrets.token_urlsafe(16)
        self.frames = 0
        self._server: Server | None = None

    async def start(self) -> str:
        """Listen on a free loopback port; returns the URL the page connects to."""
        self._server = await serve(self._handle, "127.0.0.1", 0, max_size=2**20, compression=None)
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/{self.secret}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.request is None or ws.request.path != f"/{self.secret}":
            await ws.close(1008, "unknown path")
            return
        taps: dict[int, tuple[str, str, str]] = {}
        log.info("the page sends its audio over the loopback socket")
        try:
            async for message in ws:
                if isinstance(message, str):
                    tap = json.loads(message)
                    taps[int(tap["tap"])] = (
                        str(tap["key"]),
                        str(tap.get("name") or ""),
                        str(tap.get("pid") or ""),
                    )
                    continue
                t_ms, number = HEADER.unpack_from(message)
                who = taps.get(number)
                if who is None:
                    log.warning("audio frame for unknown tap %d dropped", number)
                    continue
                self.frames += 1
                self.sink(*who, message[HEADER.size :], t_ms)
        except ConnectionClosed:
            pass
