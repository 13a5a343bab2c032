"""gunicorn worker classes for the integration test, as docs/compat.md shows them.

``gunicorn -k gunicorn_workers.PhaseloopWorker`` runs uvicorn's gunicorn worker
with phaseloop as its loop; ``AsyncioWorker`` is the same worker on asyncio's
loop, for the differential run.
"""
from uvicorn.workers import UvicornWorker


class PhaseloopWorker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "phaseloop:new_event_loop", "http": "h11"}


class AsyncioWorker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "asyncio", "http": "h11"}
