"""Behind a proxy: App(forwarded_allow_ips=...) believes X-Forwarded-For and
X-Forwarded-Proto only from allowed peers (uvicorn's rules), on real sockets;
and TrustedProxies' parsing of addresses, networks, ports and '*'."""
from __future__ import annotations

import pytest

from phaseloop.http import App, TrustedProxies, rate_limit
from support.http import request, run_app


def client_app(**settings) -> App:
    app = App(**settings)

    @app.get("/", rate_limit(window=60, max=2))
    def root(req, res):
        return {"client": list(req.client), "scheme": req.scheme}

    return app


@pytest.mark.parametrize("allowed, expected", [
    (None, ["127.0.0.1", "http"]),                      # off: the peer
    ("127.0.0.1", ["192.0.2.1", "https"]),              # the rightmost untrusted hop
    ("127.0.0.0/8, 192.0.2.0/24", ["198.51.100.4", "https"]),
    ("*", ["198.51.100.4", "https"]),                   # all trusted: the leftmost
    ("10.0.0.1", ["127.0.0.1", "http"]),                # the peer is not a trusted proxy
])
def test_forwarded_headers(loop, allowed, expected):
    app = client_app(forwarded_allow_ips=allowed)
    headers = {"X-Forwarded-For": "198.51.100.4:7000, 192.0.2.1", "X-Forwarded-Proto": "https"}

    async def client(port):
        return (await request(port, headers=headers)).json()

    body = run_app(loop, app, client)
    assert [body["client"][0], body["scheme"]] == expected


def test_rate_limit_keys_on_the_forwarded_client(loop):
    app = client_app(forwarded_allow_ips="127.0.0.1")

    async def client(port):
        statuses = []
        for who in ("192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.2"):
            r = await request(port, headers={"X-Forwarded-For": who})
            statuses.append(r.status)
        return statuses

    assert run_app(loop, app, client) == [200, 200, 429, 200]


def test_trusted_proxies_parsing():
    trusted = TrustedProxies(["10.1.0.0/16", "::1", "proxy.internal", " "])
    assert "10.1.2.3" in trusted and "10.2.0.1" not in trusted
    assert "::1" in trusted and "0:0:0:0:0:0:0:1" in trusted
    assert "proxy.internal" in trusted and "" not in trusted and None not in trusted
    assert trusted.client_of("[2001:db8::1]:443, 10.1.0.9") == ("2001:db8::1", 443)
    assert trusted.client_of("203.0.113.5:80") == ("203.0.113.5", 80)
    assert trusted.client_of(" , ") is None
    assert TrustedProxies("*").client_of("a, b") == ("a", 0)
