"""The settings of one ``phaseloop serve`` run, as the workers need them."""
from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["ServeOptions"]


@dataclass(frozen=True)
class ServeOptions:
    """What the command line says about serving (flags named as uvicorn's)."""

    host: str = "127.0.0.1"
    port: int = 3000
    uds: str | None = None
    backlog: int = 2048
    drain_timeout: float = 10.0
    limit_concurrency: int | None = None
    timeout_keep_alive: float | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    log_level: str = "info"
    access_log: bool = True
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    root_path: str = ""
    http: str = "auto"
    ws: str = "auto"
    lifespan: str = "auto"
    metrics: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_certfile else "http"

    def ssl_context(self):  # -> ssl.SSLContext | None
        """The server's TLS context (certificate and key), or None without TLS."""
        if not self.ssl_certfile:
            return None
        import ssl
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def url(self, address: object) -> str:
        """Where a client reaches ``address`` (one of the primary's bound addresses)."""
        if isinstance(address, (str, bytes, os.PathLike)):
            return "unix:%s" % os.fsdecode(address)
        host, port = address[0], address[1]     # type: ignore[index]
        if ":" in host:
            host = "[%s]" % host
        return "%s://%s:%d" % (self.scheme, host, port)
