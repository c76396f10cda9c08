"""The SSRF guard: webhook URLs may not reach inside the network that sends them.

A user-given URL is refused when its host is, or resolves to, a loopback,
private, link-local (cloud metadata lives at 169.254.169.254), multicast,
carrier-grade NAT or otherwise non-public address. It is checked when the user
sets it (``PUT /user/webhook``) and again at every send, because DNS answers
change. At send time the name is resolved **once** and the connection goes to
that checked address (``PinnedTransport``): the Host header and TLS SNI keep the
name, so certificates still verify, but a DNS answer that flips between check
and connect ("rebinding") cannot move the request inside. Redirects are never
followed. ``WEBHOOK_ALLOW_PRIVATE_URLS=true`` lifts the address rule for
operators whose receivers live on a private network (and for tests on
127.0.0.1); the scheme rule stays.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

Resolver = Callable[[str, int], Awaitable[list[str]]]
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class UnsafeWebhookURL(ValueError):
    """The URL may not be used for webhooks; the message says why, without the URL's query."""


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    address: str


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the name has (off the event loop's thread, as getaddrinfo blocks)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_problem(address: str) -> str | None:
    """Why ``address`` is not a public unicast address, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name, hit in (
        ("loopback", ip.is_loopback),
        ("link-local (cloud metadata)", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("unspecified", ip.is_unspecified),
        ("shared (carrier-grade NAT)", isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
        ("reserved", ip.is_reserved or not ip.is_global),
    ):
        if hit:
            return f"{name} address"
    return None


async def resolve_target(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> Target:
    """Check ``url`` and pick the one address to connect to; raises ``UnsafeWebhookURL``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeWebhookURL("webhook URLs must use http or https")
    host = parts.hostname
    if not host:
        raise UnsafeWebhookURL("webhook URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeWebhookURL("webhook URL has an invalid port") from exc
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = await (resolver or system_resolver)(host, port)
        except (OSError, UnicodeError) as exc:
            raise UnsafeWebhookURL(f"webhook host {host!r} does not resolve") from exc
    if not addresses:
        raise UnsafeWebhookURL(f"webhook host {host!r} does not resolve")
    if not allow_private:
        # Every answer must be public: a name with one private answer is refused outright.
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise UnsafeWebhookURL(
                    f"webhook host {host!r} resolves to a {problem}; only public addresses are allowed"
                )
    return Target(host, port, addresses[0])


class PinnedTransport(httpx.AsyncBaseTransport):
    """Resolve and check each request's host once, then connect to exactly that address."""

    def __init__(self, *, allow_private: bool, resolver: Resolver | None = None) -> None:
        # No keep-alive: pooled connections are keyed by the pinned address, so two names on one
        # address could otherwise share a TLS connection verified for the other name.
        self._inner = httpx.AsyncHTTPTransport(retries=0, limits=httpx.Limits(max_keepalive_connections=0))
        self._allow_private = allow_private
        self._resolver = resolver

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = await resolve_target(
            str(request.url), allow_private=self._allow_private, resolver=self._resolver
        )
        if target.address != request.url.host:
            request.headers["Host"] = request.url.netloc.decode("ascii")
            request.extensions = {**request.extensions, "sni_hostname": target.host}
            request.url = request.url.copy_with(host=target.address)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
