"""``phaseloop serve --metrics``: ``GET /metrics`` in Prometheus' text format.

Through ``prometheus_client`` (``pip install phaseloop[metrics]``) in its
multiprocess mode: every process of the cluster writes its values to files
in ``PROMETHEUS_MULTIPROC_DIR`` and whichever worker answers ``/metrics``
reads them all, so one scrape sees the whole cluster. The primary owns that
directory (:class:`PrimaryMetrics`): it uses the one the environment names
(its ``*.db`` files from an earlier run are removed first) or makes a
temporary one (removed at exit), sets the variable before the app is
imported (prometheus_client reads it when imported), marks a worker's live
gauges dead when the worker exits, and counts the deaths it did not ask for.

What each worker reports (:class:`WorkerMetrics`):

==========================================  =========  ===============================
``phaseloop_event_loop_utilization``        gauge      busy share of the loop over the
                                                       last second, per worker (``pid``)
``phaseloop_event_loop_delay_seconds``      histogram  how late a 10 ms timer fires
``phaseloop_loop_phase_seconds_total``      counter    time in each phase (``phase``)
``phaseloop_open_connections``              gauge      summed over the live workers
``phaseloop_http_requests_total``           counter    by ``route`` (its pattern; ``""``
                                                       when none matched) and ``status``
``phaseloop_worker_restarts_total``         counter    workers that died unasked (primary)
==========================================  =========  ===============================

A phaseloop.http App gets a ``GET /metrics`` route and a ``response``
listener; an ASGI app is wrapped in a middleware that answers ``/metrics``
and counts the others (the route is Starlette's and FastAPI's
``scope["route"]``). The gauges and counters of the loop are updated once a
second, so a scrape may be up to a second behind for the other workers.
"""
from __future__ import annotations

import asyncio
import glob
import os
import shutil
import tempfile
from typing import Any, Awaitable, Callable

from .. import cluster
from ..metrics import EventLoopDelayMonitor, event_loop_utilization

__all__ = ["PrimaryMetrics", "WorkerMetrics", "MetricsUnavailable"]

ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds between two updates of a worker's loop gauges and counters.
UPDATE_INTERVAL = 1.0
#: The delay monitor's timer period (Node's monitorEventLoopDelay default).
DELAY_RESOLUTION = 0.01
DELAY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PHASES = ("timers", "pending", "idle", "prepare", "poll", "check", "close", "ready")


class MetricsUnavailable(RuntimeError):
    """prometheus_client is not installed, or was imported before the primary could
    put it in multiprocess mode."""


def _prometheus() -> Any:
    """prometheus_client, in multiprocess mode (the environment variable is set)."""
    try:
        import prometheus_client
        from prometheus_client import values
    except ImportError:
        raise MetricsUnavailable("--metrics needs prometheus_client: "
                                 "pip install 'phaseloop[metrics]'") from None
    if values.ValueClass is values.MutexValue:
        # Imported before ENV was set (by a sitecustomize, say): the metrics made
        # from now on use the class the variable asks for.
        values.ValueClass = values.get_value_class()
    return prometheus_client


class PrimaryMetrics:
    """The primary's side: the multiprocess directory and the restarts counter.
    Make it before the app is imported; :meth:`close` at exit."""

    def __init__(self) -> None:
        given = os.environ.get(ENV)
        self.owned = not given
        self.path = given or tempfile.mkdtemp(prefix="phaseloop-metrics-")
        os.makedirs(self.path, exist_ok=True)
        for stale in glob.glob(os.path.join(self.path, "*.db")):
            os.remove(stale)
        os.environ[ENV] = self.path
        self.prometheus = _prometheus()
        from prometheus_client import multiprocess
        self._mark_dead = multiprocess.mark_process_dead
        self.restarts = self.prometheus.Counter(
            "phaseloop_worker_restarts", "Workers that died without being asked to stop",
            registry=None)
        cluster.on("exit", self._on_exit)

    def _on_exit(self, worker: Any, code: Any, signal: Any) -> None:
        self._mark_dead(worker.pid, self.path)
        if not worker.exited_after_disconnect:
            self.restarts.inc()

    def close(self) -> None:
        cluster.off("exit", self._on_exit)
        self._mark_dead(os.getpid(), self.path)
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)


class _DelayHistogram(EventLoopDelayMonitor):
    """The loop-delay monitor of phaseloop.metrics, each sample observed by a
    Prometheus histogram instead of kept in the monitor's own buckets."""

    def __init__(self, histogram: Any) -> None:
        super().__init__(DELAY_RESOLUTION)
        self._histogram = histogram

    def _record(self, delay: float) -> None:
        self._histogram.observe(delay)


class WorkerMetrics:
    """A worker's metrics. Made in the primary (it only keeps the settings); its
    metric objects are made by :meth:`start`, in each worker, on its loop."""

    def __init__(self, path: str = "/metrics") -> None:
        self.path = path
        self.requests: Any = None
        self._connections: Callable[[], int] = lambda: 0

    def start(self, connections: Callable[[], int]) -> None:
        """In a worker: make the metrics and start updating the loop's every second;
        ``connections()`` gives this worker's open connections."""
        prometheus = _prometheus()
        self._connections = connections
        self.requests = prometheus.Counter(
            "phaseloop_http_requests", "HTTP requests answered", ["route", "status"],
            registry=None)
        self.utilization = prometheus.Gauge(
            "phaseloop_event_loop_utilization",
            "Share of the last second the worker's event loop was running callbacks",
            multiprocess_mode="liveall", registry=None)
        self.open_connections = prometheus.Gauge(
            "phaseloop_open_connections", "Open client connections",
            multiprocess_mode="livesum", registry=None)
        self.phase_seconds = prometheus.Counter(
            "phaseloop_loop_phase_seconds", "Seconds the event loop spent in each phase",
            ["phase"], registry=None)
        delay = prometheus.Histogram(
            "phaseloop_event_loop_delay_seconds",
            "How late a timer due every 10 ms fired", buckets=DELAY_BUCKETS, registry=None)
        loop = asyncio.get_running_loop()
        self._monitor = _DelayHistogram(delay)
        self._monitor.enable()
        self._loop_metrics = getattr(loop, "metrics", None)
        self._elu = event_loop_utilization() if self._loop_metrics else None
        self._phase_time = dict(self._loop_metrics()["phase_time"]) if self._loop_metrics else {}
        self._timer = loop.call_later(UPDATE_INTERVAL, self._update)

    def _update(self) -> None:
        loop = asyncio.get_running_loop()
        self.open_connections.set(self._connections())
        if self._loop_metrics is not None:
            now = event_loop_utilization()
            self.utilization.set(event_loop_utilization(previous=self._elu).utilization)
            self._elu = now
            phase_time = self._loop_metrics()["phase_time"]
            for phase, seconds in phase_time.items():
                spent = seconds - self._phase_time.get(phase, 0.0)
                if spent > 0:
                    self.phase_seconds.labels(phase).inc(spent)
            self._phase_time = dict(phase_time)
        self._timer = loop.call_later(UPDATE_INTERVAL, self._update)

    def observe(self, route: str | None, status: int) -> None:
        if self.requests is not None:
            self.requests.labels(route or "", str(status)).inc()

    def render(self) -> tuple[bytes, str]:
        """The text exposition of every process's metrics, and its content type."""
        prometheus = _prometheus()
        from prometheus_client import multiprocess
        registry = prometheus.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return prometheus.generate_latest(registry), prometheus.CONTENT_TYPE_LATEST

    # -- serving it --------------------------------------------------------------

    def instrument_app(self, app: Any) -> None:
        """A phaseloop.http App: ``GET /metrics`` and a ``response`` listener."""
        if self.path in app._static:
            raise ValueError(f"the App already has a route {self.path}: --metrics needs it")

        @app.get(self.path)
        def metrics_route(req: Any, res: Any) -> None:
            body, content_type = self.render()
            res.type(content_type).send(body)

        app.on("response", lambda req, res: self.observe(req.route, res.status_code))

    def asgi(self, app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """An ASGI app that answers ``/metrics`` and counts what ``app`` answers."""
        async def with_metrics(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            if scope.get("path") == self.path and scope.get("method") in ("GET", "HEAD"):
                body, content_type = self.render()
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", content_type.encode()),
                                        (b"content-length", b"%d" % len(body))]})
                await send({"type": "http.response.body",
                            "body": body if scope["method"] == "GET" else b""})
                self.observe(self.path, 200)
                return
            status = [500]

            async def send_and_see(message: dict) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_and_see)
            finally:
                route = scope.get("route")
                self.observe(getattr(route, "path", None) if route is not None else None,
                             status[0])
        return with_metrics
