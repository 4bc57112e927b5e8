"""Who is on the other end: the client's address, believed through trusted proxies only.

Behind an Ingress every connection comes from the Ingress. ``REMEDIATOR_TRUSTED_PROXIES``
names the proxies whose ``X-Forwarded-For`` is believed: the entries are read from the
right (the one the nearest proxy wrote) while the address in hand is a trusted proxy;
the first one that is not, is the client. Whatever a client writes to the left of that
is never read. Without the setting, the peer address is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from remediator.settings import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(request: web.Request, trusted: Sequence[Network]) -> str:
    """The client's address as text (``unknown`` when the peer has none, e.g. a socket file)."""
    peer = request.remote or ""
    current = _address(peer)
    if current is None:
        return peer or "unknown"
    if trusted:
        hops = [
            hop.strip() for value in request.headers.getall("X-Forwarded-For", ()) for hop in value.split(",")
        ]
        while hops and any(current in network for network in trusted):
            written = _address(hops.pop())
            if written is None:
                break  # not an address: the proxy itself is the last one we can vouch for
            current = written
    return str(current)


def address_key(address: str) -> str:
    """What failed credentials are counted under: an IPv4 address, or an IPv6 address's
    /64 (one host gets a whole /64, and would otherwise pick a new address per guess)."""
    parsed = _address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else parsed or address)


def _address(text: str) -> Address | None:
    """An address, also as written with a port (``192.0.2.1:443``, ``[2001:db8::1]:443``)."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
