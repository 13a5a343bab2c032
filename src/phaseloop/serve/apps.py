"""What ``phaseloop serve MODULE:APP`` serves: importing the app and telling its kind.

Three kinds, tried in this order:

- ``"phaseloop"``: a :class:`phaseloop.http.App`, served by its own HTTP/1.1
  server (``phaseloop.http.server``) in each worker;
- ``"asgi"``: an ASGI 3 application, an ``async def app(scope, receive, send)``
  or an object whose ``__call__`` is such a coroutine function (FastAPI,
  Starlette, Django's ASGI handler...), served by uvicorn's protocols
  (asgi_worker.py);
- ``"serve"``: any other object with ``async serve(sock=...)``, awaited once per
  listening socket in each worker (the cluster's lowest level).
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

__all__ = ["app_kind", "is_asgi_app", "load_app"]


def load_app(spec: str) -> Any:
    """Import ``"package.module:attribute"`` (the attribute may be dotted) and return it.

    The current directory is put first on ``sys.path`` so ``module:app`` finds a module
    next to where the command runs. Raises ValueError for a malformed spec and
    ImportError/AttributeError when it cannot be found."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError("expected module:attribute, got %r" % spec)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _takes_three_arguments(fn: Any) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True                 # no signature to read (a C callable): let it try
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    required = [p for p in positional if p.default is p.empty]
    return len(required) <= 3 <= len(positional)


def is_asgi_app(obj: Any) -> bool:
    """Whether ``obj`` looks like an ASGI 3 application: a coroutine function of
    ``(scope, receive, send)``, or an instance whose ``__call__`` is one."""
    if inspect.isclass(obj) or not callable(obj):
        return False
    if inspect.iscoroutinefunction(obj):
        return _takes_three_arguments(obj)
    call = getattr(type(obj), "__call__", None)
    if call is not None and inspect.iscoroutinefunction(call):
        return _takes_three_arguments(getattr(obj, "__call__"))
    return False


def app_kind(obj: Any) -> str | None:
    """``"phaseloop"``, ``"asgi"``, ``"serve"`` (see the module docstring), or None."""
    http = sys.modules.get("phaseloop.http")
    if http is not None and isinstance(obj, http.App):
        return "phaseloop"
    if is_asgi_app(obj):
        return "asgi"
    serve = getattr(obj, "serve", None)
    if serve is not None and callable(serve):
        return "serve"
    return None
