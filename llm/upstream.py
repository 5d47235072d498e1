"""Which upstream URL a community may name as its LLM endpoint (§5): the one check, used by
`PUT /api/v1/ai/config` (a refusal is a 400 naming `base_url`) and again each time a client for
the URL is built (llm/endpoints.py), so a row stored before these rules is never used.

A URL passes when it is http(s), carries no credentials (user:password@), no query or fragment
(a key in `?api_key=` is a credential too), and its host is not a metadata name and every address
it resolves to is globally routable: no loopback, private, link-local, shared (CGNAT), reserved,
unspecified or multicast address, no known metadata address (some are public, e.g. Azure's
168.63.129.16), and no IPv6 form that embeds such an IPv4 address (mapped, 6to4, Teredo, NAT64).
A host named in ALLOWED_UPSTREAM_HOSTS skips the address checks (not the others).

The limit: the check resolves the name when it runs; the HTTP client resolves it again when it
connects. A name whose DNS answer changes after the check (rebinding) is not caught between two
checks; deployments that need that guarantee also restrict egress at the network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

RESOLVE_TIMEOUT_S = 5.0
METADATA_HOSTS = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "metadata.azure.internal",
    "instance-data", "instance-data.ec2.internal", "metadata.tencentyun.com",
})
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "169.254.169.123", "168.63.129.16", "100.100.100.200",
    "fd00:ec2::254", "fd00:ec2::23",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def normalise_host(host: str) -> str:
    """How hosts are compared: lower case, no brackets, no trailing dot."""
    return host.strip().strip("[]").rstrip(".").lower()


def allowed_hosts(values: Iterable[str]) -> frozenset[str]:
    return frozenset(normalise_host(v) for v in values if v.strip())


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (raises OSError when it gives none)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_problem(address: IP) -> str | None:
    """Why a call to this address is refused, or None."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_v4(address)
        if inner is not None and (problem := address_problem(inner)):
            return problem
    if address in METADATA_ADDRESSES:
        return "is a cloud metadata address"
    if address.is_loopback:
        return "is a loopback address"
    if address.is_link_local:
        return "is a link-local address"
    if address.is_unspecified:
        return "is an unspecified address"
    if address.is_multicast:
        return "is a multicast address"
    if address.is_private:
        return "is a private address"
    if not address.is_global:
        return "is not a globally routable address"
    return None


def syntax_problem(url: str) -> str | None:
    """What is wrong with the URL itself (scheme, credentials, query, host, port), or None."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "must start with http:// or https://"
    if "@" in parts.netloc:
        return "must not carry credentials (user:password@); send the key as api_key"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return "must not carry a query or fragment"
    if not parts.hostname:
        return "must name a host"
    if port == 0:
        return "must not use port 0"
    return None


async def url_problem(url: str, allowed: frozenset[str], resolve: Resolver = system_resolver) -> str | None:
    """Why `url` may not be called for a community, or None when it may (resolves its host)."""
    if problem := syntax_problem(url):
        return problem
    parts = urlsplit(url)
    host = normalise_host(parts.hostname or "")
    if host in allowed:
        return None
    if host in METADATA_HOSTS:
        return f"host {host} is a cloud metadata name (ALLOWED_UPSTREAM_HOSTS can allow a host)"
    try:
        literal: IP | None = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                found = await resolve(host, port)
        except (OSError, UnicodeError, TimeoutError):
            found = []
        if not found:
            return f"host {host} does not resolve"
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in found]
    for address in addresses:
        if problem := address_problem(address):
            where = f"host {host}" if literal is not None else f"host {host} resolves to {address}, which"
            return f"{where} {problem} (ALLOWED_UPSTREAM_HOSTS can allow a host)"
    return None
