"""The dashboard's files as the real gateway process serves them, and the WebSocket key as a subprotocol.

What the pages do in a browser is tested in tests/ui with Chromium; here: routes,
headers (CSP, no framing, revalidation) and that a browser-style WebSocket
(subprotocols, no header, no key in the URL) is accepted or refused.
"""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.timeout(60)


async def test_root_redirects_and_pages_carry_security_headers(gateway):
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        root = await client.get("/")
        assert root.status_code == 307 and root.headers["location"] == "/ui/"
        page = await client.get("/ui/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-cache"  # it names the current assets
        assets = re.findall(r'(?:src|href)="(/ui/assets/[0-9a-f]{12}/[^"]+)"', page.text)
        preloaded = re.findall(r'<link rel="modulepreload" href="([^"]+)"', page.text)
        prefix = re.search(r"/ui/assets/[0-9a-f]{12}", page.text).group(0)
        assert f"{prefix}/js/main.js" in assets and f"{prefix}/app.css" in assets
        assert f"{prefix}/js/views/meetings.js" in preloaded and f"{prefix}/js/live.js" in preloaded
        for path in set(assets) | set(preloaded):
            asset = await client.get(path)
            assert asset.status_code == 200, path
            assert asset.headers["content-security-policy"] == csp
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        js = await client.get(f"{prefix}/js/main.js")
        assert js.headers["content-type"].startswith(("text/javascript", "application/javascript"))
        assert (await client.get(f"{prefix}/js/nope.js")).status_code == 404
        assert (await client.get("/ui/assets/000000000000/js/main.js")).status_code == 404
        spec = (await client.get("/openapi.json")).json()
        assert not any(p == "/" or p.startswith("/ui") for p in spec["paths"])


async def test_websocket_key_as_subprotocol(gateway, make_user):
    _, token = await make_user()
    url = gateway.base_url.replace("http://", "ws://") + "/ws"
    async with connect(url, subprotocols=["vexa.v1", f"vexa.key.{token}"]) as ws:
        assert ws.subprotocol == "vexa.v1"  # the key is never echoed back
        await ws.send(json.dumps({"action": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "pong"}
    async with connect(url, subprotocols=["vexa.v1", "vexa.key." + "x" * 40]) as ws:
        assert "Invalid or revoked" in json.loads(await asyncio.wait_for(ws.recv(), 5))["error"]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4403
