"""``phaseloop serve``: an app on a cluster of worker processes, from the command line.

::

    phaseloop serve main:app --workers 4 --port 8000

Modules: cli.py (the flags and the run), apps.py (loading ``MODULE:APP`` and
telling an ASGI app from a phaseloop.http App), options.py (the settings the
workers get), asgi_worker.py (uvicorn's protocols in a worker), app_worker.py
(a phaseloop.http App in a worker), reload.py (``--reload``), metrics.py
(``--metrics``). See docs/cluster.md.
"""
from __future__ import annotations

from .apps import app_kind, is_asgi_app, load_app
from .cli import main

__all__ = ["app_kind", "is_asgi_app", "load_app", "main"]
