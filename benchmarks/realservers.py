"""Real frameworks' hello world on each loop: uvicorn + Starlette, aiohttp; driven by wrk.

Where ``benchmarks.http`` measures a minimal httptools protocol, this measures the
servers people deploy, unmodified: uvicorn (its httptools HTTP protocol where
httptools is installed, as ``uvicorn --http auto`` picks, else h11) serving a
Starlette app whose ``/`` returns ``PlainTextResponse("Hello, World!")``, and
aiohttp's web server whose ``/`` returns ``web.Response(text="Hello, World!")``;
each on phaseloop, uvloop and asyncio's own loop.

Example::

    python -m benchmarks.realservers                 # 5 repeats, ~3 minutes
    python -m benchmarks.realservers --quick         # smoke run, ~10 s
    python -m benchmarks.realservers --apps aiohttp --loops phaseloop,uvloop --markdown

Method, as ``benchmarks.http`` (both take wrk's driver and measurement from
``benchmarks.wrk``):
server and wrk (one thread, ``--connections`` keep-alive connections) pinned to
the same CPU (``--cpu``, default 0) with wrk under SCHED_BATCH, a fresh server
process per (repeat, app, loop) that says ``ready PORT`` once it accepts
requests, runs interleaved (every loop of an app one after the other, repeat
after repeat), a ``--warmup``-second wrk run then the measured
``--duration``-second one, the server's CPU time (user + system over all its
threads) read just before and after the measured run and divided by the
requests wrk completed, p50/p99 from ``wrk --latency``, medians over repeats and
ratios to uvloop's medians for the same app from the same run.  Socket errors or
non-2xx answers make a run an error (exit status 1).

A loop, or an app's packages (``pip install -e .[integration]``), that does not
import shows as ``missing``; that is not an error.

The server side runs in this module too: ``python -m benchmarks.realservers
--serve APP --loop LOOP --port 0`` starts the framework on that loop, listening
on 127.0.0.1 (``--port 0``: a free port) the way its own launcher binds (uvicorn:
``loop.create_server(host=..., port=...)``; aiohttp: a ``TCPSite``), prints
``ready PORT`` once it accepts requests and serves until SIGTERM.  Binding that
way matters: asyncio (and phaseloop, which follows it) sets TCP_NODELAY only on
sockets whose ``proto`` is IPPROTO_TCP, which a socket made with
``socket.socket()`` and passed in as ``sock=`` is not; uvicorn writes headers
and body separately, so such a socket costs it a 40 ms delayed ACK per request.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from benchmarks.harness import (
    EXIT_LOOP_MISSING,
    log,
    raise_fd_limit,
    say_ready,
    say_unavailable,
)
from benchmarks.loops import (
    LOOP_NAMES,
    REFERENCE_LOOP,
    LoopMissing,
    load_loop_factory,
    loop_versions,
)
from benchmarks.options import split_names
from benchmarks.points import Point, point_text, ratio, run_point
from benchmarks.tables import (
    cpu_model,
    format_ratio,
    format_table,
    machine_text,
    print_caption,
    print_notes,
    versions_text,
    write_json,
)
from benchmarks.wrk import Settings as WrkSettings
from benchmarks.wrk import (
    add_wrk_arguments,
    describe_wrk_run,
    measure_once,
    prepare_wrk_run,
    wrk_version,
)

__all__ = ["APPS", "main"]

#: The body of every answer.
HELLO = "Hello, World!"
#: Seconds uvicorn may take between serve() and ``started``.
UVICORN_START_TIMEOUT = 20.0


# --------------------------------------------------------------------------- server side


def uvicorn_http() -> str:
    """uvicorn's HTTP implementation here: what its ``--http auto`` picks."""
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


async def serve_starlette(port: int, ready: Callable[[int], None]) -> None:
    """uvicorn serving a one-route Starlette app; ``ready(port)`` once started.

    uvicorn binds 127.0.0.1:``port`` itself, as its command line does (through
    ``loop.create_server(host=..., port=...)``).
    """
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def hello(request: Request) -> Response:
        return PlainTextResponse(HELLO)

    app = Starlette(routes=[Route("/", hello)])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=uvicorn_http(), ws="none",
                            lifespan="off", access_log=False, log_level="warning",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    deadline = asyncio.get_running_loop().time() + UVICORN_START_TIMEOUT
    while not server.started:
        if serving.done():
            await serving
            raise RuntimeError("uvicorn stopped before it started")
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"uvicorn did not start in {UVICORN_START_TIMEOUT:g} s")
        await asyncio.sleep(0.005)
    ready(server.servers[0].sockets[0].getsockname()[1])
    await serving


async def serve_aiohttp(port: int, ready: Callable[[int], None]) -> None:
    """aiohttp's web server with a one-route app; ``ready(port)`` once listening.

    A ``TCPSite`` on 127.0.0.1:``port``, as ``web.run_app`` makes.
    """
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=HELLO)

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready(runner.addresses[0][1])
        await asyncio.Event().wait()  # until killed
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class App:
    """A framework under test: what it needs installed and how it serves."""

    label: str
    packages: tuple[str, ...]
    serve: Callable[[int, Callable[[int], None]], Awaitable[None]]


#: The apps by their command-line names, in table order.
APPS: dict[str, App] = {
    "starlette": App("uvicorn+starlette", ("uvicorn", "starlette"), serve_starlette),
    "aiohttp": App("aiohttp", ("aiohttp",), serve_aiohttp),
}


def serve(app_name: str, loop_name: str, port: int) -> int:
    """Run one server until killed; the process's exit status.

    Prints ``ready PORT`` once requests can come, or ``{"missing": REASON}`` (exit
    status 3, as ``benchmarks.servers``) when the loop or the app's packages do not
    import.
    """
    app = APPS[app_name]
    try:
        factory, _version = load_loop_factory(loop_name)
        for name in app.packages:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise LoopMissing(f"{app.label} needs {name} (pip install -e .[integration]): "
                                  f"{exc}") from exc
    except LoopMissing as exc:
        say_unavailable("missing", str(exc))
        return EXIT_LOOP_MISSING
    loop = factory()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(app.serve(port, say_ready))
    except KeyboardInterrupt:
        pass
    finally:
        asyncio.set_event_loop(None)
    return 0


# --------------------------------------------------------------------------- measuring


@dataclass
class Settings(WrkSettings):
    """The wrk benchmarks' settings, and which apps to measure."""

    apps: list[str] = field(default_factory=lambda: list(APPS))


@dataclass
class Report:
    """One point per (app, loop)."""

    settings: Settings
    points: dict[tuple[str, str], Point] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(p.status == "error" for p in self.points.values())


def server_command(app_name: str, loop_name: str) -> list[str]:
    """The argv of a server process of this module on a free port."""
    return [sys.executable, "-m", "benchmarks.realservers", "--serve", app_name,
            "--loop", loop_name, "--port", "0"]


def measure(settings: Settings) -> Report:
    """Every (repeat, app, loop) run; the loops of an app one after the other."""
    report = Report(settings, {(app, lp): Point() for app in settings.apps
                               for lp in settings.loops})
    for repeat in range(settings.repeat):
        for (app_name, loop_name), point in report.points.items():
            if point.status != "ok":
                continue  # missing or failed once: not started again
            outcome = run_point(server_command(app_name, loop_name), point, settings.cpu,
                                lambda server: measure_once(server, settings))
            log(settings.verbose, f"[{repeat + 1}/{settings.repeat}] {app_name:<9} "
                                  f"{loop_name:<9} {outcome}")
    return report


# --------------------------------------------------------------------------- reporting


def result_table(report: Report, *, markdown: bool = False) -> str:
    """One row per (app, loop): medians and ratios to uvloop on the same app."""
    header = ["app", "loop", "req/s", "server µs/req", "p50 µs", "p99 µs",
              f"req/s ÷ {REFERENCE_LOOP}", f"cpu ÷ {REFERENCE_LOOP}"]
    rows = []
    for (app_name, loop_name), point in report.points.items():
        label = APPS[app_name].label
        if point.status != "ok":
            rows.append([label, loop_name, point.status, *"-" * 5])
            continue
        reference = report.points.get((app_name, REFERENCE_LOOP))
        rows.append([label, loop_name, point_text(point, "rps", spread=True),
                     point_text(point, "server_us"), point_text(point, "p50_us"),
                     point_text(point, "p99_us"),
                     format_ratio(ratio(point, reference, "rps")),
                     format_ratio(ratio(point, reference, "server_us"))])
    return format_table(header, rows, markdown=markdown)


def package_versions() -> dict[str, str]:
    """Versions of the frameworks (and uvicorn's HTTP parser) installed here."""
    versions = {}
    for name in ("uvicorn", "starlette", "aiohttp", "httptools"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def describe_run(settings: Settings) -> str:
    """One line saying how the numbers were obtained."""
    return (f"{describe_wrk_run(settings)}; uvicorn --http {uvicorn_http()}; {machine_text()}; "
            f"{versions_text(loop_versions(settings.loops))}; {versions_text(package_versions())}")


def report_json(report: Report) -> dict[str, Any]:
    settings = report.settings
    results = []
    for (app_name, loop_name), point in report.points.items():
        reference = report.points.get((app_name, REFERENCE_LOOP))
        results.append({
            "app": app_name, "loop": loop_name, "status": point.status,
            "detail": point.detail, "samples": point.samples,
            "median": {m: point.median(m) for m in ("rps", "server_us", "p50_us", "p99_us")},
            "ratio_to_uvloop": {m: ratio(point, reference, m) for m in ("rps", "server_us")},
        })
    return {"cpu": cpu_model(), "wrk": wrk_version(), "repeat": settings.repeat,
            "connections": settings.connections, "duration_s": settings.duration,
            "warmup_s": settings.warmup, "pinned_cpu": settings.cpu,
            "client_sched_batch": settings.client_batch, "uvicorn_http": uvicorn_http(),
            "versions": package_versions(), "results": results}


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.realservers",
        description="uvicorn+Starlette and aiohttp hello world per loop, driven by wrk.")
    parser.add_argument("--apps", default=",".join(APPS),
                        type=lambda s: split_names(s, list(APPS), "app"),
                        help="comma-separated apps (default: %(default)s)")
    add_wrk_arguments(parser)
    parser.add_argument("--serve", choices=list(APPS), metavar="APP",
                        help="(internal) be the server of APP on --loop, print 'ready PORT'")
    parser.add_argument("--loop", choices=LOOP_NAMES, help="(with --serve) the server's loop")
    parser.add_argument("--port", type=int, default=0,
                        help="(with --serve) port on 127.0.0.1; 0 (default): a free one")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.realservers``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.serve:
        if args.loop is None:
            parser.error("--serve needs --loop")
        raise_fd_limit()
        return serve(args.serve, args.loop, args.port)
    status = prepare_wrk_run(args)
    if status is not None:
        return status
    settings = Settings.from_args(args, apps=args.apps)
    report = measure(settings)
    print_caption(describe_run(settings), markdown=args.markdown)
    print("HTTP/1.1 hello world on real frameworks: requests/s (higher is better), server CPU "
          "µs per request (lower is better), latency µs; ratios to uvloop on the same app.\n")
    print(result_table(report, markdown=args.markdown))
    problems = [f"{APPS[app].label} on {lp}: {p.status} ({p.detail})"
                for (app, lp), p in report.points.items() if p.status != "ok"]
    print_notes(problems, markdown=args.markdown)
    if args.json:
        write_json(report_json(report), args.json)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
