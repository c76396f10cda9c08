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
        scripts = re.findall(r'src="([^"]+)"', page.text) + re.findall(r'href="(/ui/[^"]+)"', page.text)
        assert "/ui/static/js/main.js" in scripts and "/ui/static/app.css" in scripts
        for path in scripts:
            asset = await client.get(path)
            assert asset.status_code == 200, path
            assert asset.headers["content-security-policy"] == csp
            assert asset.headers["cache-control"] == "no-cache"
            again = await client.get(path, headers={"If-None-Match": asset.headers["etag"]})
            assert again.status_code == 304, path
        js = await client.get("/ui/static/js/main.js")
        assert js.headers["content-type"].startswith(("text/javascript", "application/javascript"))
        assert (await client.get("/ui/static/js/nope.js")).status_code == 404
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
