"""Behind a reverse proxy: the client's address from ``X-Forwarded-For``, trusted
only when the connection comes from an allowed proxy.

``App(forwarded_allow_ips="127.0.0.1")`` (``phaseloop serve --proxy-headers
--forwarded-allow-ips ...``) makes the server rewrite ``req.client`` (and so
the key of ``rate_limit``) and ``req.scheme`` for requests whose peer is one
of the allowed proxies, with uvicorn's rules (its ``--forwarded-allow-ips``):
a comma-separated list of addresses, networks (``10.0.0.0/8``) or other
literals, or ``*`` to trust every peer (a proxy on a Unix socket has no
address: only ``*`` trusts it). The
client is the rightmost address of ``X-Forwarded-For`` that is not itself an
allowed proxy (each proxy appends the address it got the request from), or
the leftmost when all of them are; ``X-Forwarded-Proto`` sets the scheme.
A request from any other peer keeps its own address, whatever headers it
sends: a client cannot choose its rate-limit key by sending the header.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Iterable

__all__ = ["TrustedProxies"]

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_SCHEMES = frozenset({"http", "https"})


def _split_host_port(value: str) -> tuple[str, int]:
    """``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:5678`` or ``::1`` -> (host, port or 0)."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if sep and rest.startswith(":") and rest[1:].isdigit():
            return host, int(rest[1:])
        return (host, 0) if sep and not rest else (value, 0)
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        if port.isdigit():
            return host, int(port)
    return value, 0


class TrustedProxies:
    """The proxies whose ``X-Forwarded-*`` headers are believed.

    ``TrustedProxies("127.0.0.1, 10.0.0.0/8")``; ``"*"`` trusts every peer.
    ``client_of(peer_host, forwarded_for)`` gives the client's (host, port).
    """

    def __init__(self, allowed: str | Iterable[str]) -> None:
        items = [a.strip() for a in (allowed.split(",") if isinstance(allowed, str) else allowed)]
        items = [a for a in items if a]
        self.trust_all = "*" in items
        self._hosts: set[_IP] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._literals: set[str] = set()
        for item in items:
            try:
                if "/" in item:
                    self._networks.append(ipaddress.ip_network(item, strict=False))
                else:
                    self._hosts.add(ipaddress.ip_address(item))
            except ValueError:
                self._literals.add(item)
        self._cache: dict[str, bool] = {}

    def __contains__(self, host: Any) -> bool:
        if self.trust_all:
            return True
        if not isinstance(host, str):
            return False
        known = self._cache.get(host)
        if known is None:
            known = self._trusts(host)
            if len(self._cache) < 4096:
                self._cache[host] = known
        return known

    def _trusts(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return host in self._literals
        return ip in self._hosts or any(ip in net for net in self._networks)

    def client_of(self, forwarded_for: str) -> tuple[str, int] | None:
        """The client in an ``X-Forwarded-For`` value (see the module docstring);
        None when the value holds no address."""
        hops = [h.strip() for h in forwarded_for.split(",")]
        hops = [h for h in hops if h]
        if not hops:
            return None
        if not self.trust_all:
            for hop in reversed(hops):
                host, port = _split_host_port(hop)
                if host not in self:
                    return host, port
        return _split_host_port(hops[0])

    def apply(self, request: Any) -> None:
        """Rewrite ``request.client`` and ``request.scheme`` from its proxy headers
        when its peer is trusted."""
        peer = request.client
        host = peer[0] if isinstance(peer, (tuple, list)) and peer else (peer or "")
        if host not in self:
            return
        headers = request.headers
        proto = headers.get("x-forwarded-proto")
        if proto is not None:
            proto = proto.split(",")[0].strip().lower()
            if proto in _SCHEMES:
                request.scheme = proto
        forwarded = headers.get("x-forwarded-for")
        if forwarded:
            client = self.client_of(forwarded)
            if client is not None:
                request.client = client
