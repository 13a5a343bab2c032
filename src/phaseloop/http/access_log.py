"""One log line per answered request, as uvicorn's access log writes it.

``app.on_response(access_log)`` (``phaseloop serve`` does it unless
``--no-access-log``) logs ``127.0.0.1:51234 - "GET /notes?x=1 HTTP/1.1" 200``
at INFO on the ``phaseloop.http.access`` logger once each response is
written. The check that INFO is enabled comes first, so a server run with
``--log-level warning`` pays one method call per request for it.
"""
from __future__ import annotations

import logging
from typing import Any

__all__ = ["access_log", "logger"]

logger = logging.getLogger("phaseloop.http.access")


def _client_text(client: Any) -> str:
    if isinstance(client, (tuple, list)) and len(client) >= 2:
        return "%s:%s" % (client[0], client[1])
    return str(client) if client else "-"


def access_log(req: Any, res: Any) -> None:
    """A response hook (``App.on_response``): log the request and its status."""
    if logger.isEnabledFor(logging.INFO):
        logger.info('%s - "%s %s HTTP/%s" %d', _client_text(req.client), req.method,
                    req.url.decode("latin-1"), req.http_version, res.status_code)
