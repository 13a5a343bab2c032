"""Smoke test of an installed phaseloop, run by .ci/package.sh with the python of a
fresh venv that holds only the built wheel (or the sdist's install).

It runs from outside the source tree, so what it imports is the installed package:
``import phaseloop`` from the venv's site-packages, the compiled ``phaseloop.loop``
extension and the backend it was built with, one loop run that goes through the
scheduler, a timer and a TCP round trip on 127.0.0.1, and the ``phaseloop`` console
script's ``--help``.  The first failed check ends it with status 1 and says which.

    venv/bin/python .ci/wheel_smoke.py --backend epoll
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.machinery
import subprocess
import sys
import sysconfig
from pathlib import Path


def fail(message: str) -> None:
    print(f"wheel smoke: FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


async def round_trip() -> bytes:
    """A timer, an immediate and a TCP echo through the loop's own transports."""
    loop = asyncio.get_running_loop()
    order: list[str] = []
    loop.call_later(0, order.append, "timer")
    loop.call_immediate(order.append, "immediate")
    await asyncio.sleep(0.01)
    if sorted(order) != ["immediate", "timer"]:
        fail(f"after 10 ms the timer and the immediate ran: {order}")

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        answer = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", required=True, choices=("epoll", "kqueue", "poll"),
                        help="the backend the build must report")
    args = parser.parse_args(argv)

    import phaseloop
    import phaseloop.loop

    installed = {Path(sysconfig.get_path(key)).resolve() for key in ("purelib", "platlib")}
    package_dir = Path(phaseloop.__file__).resolve().parent
    if package_dir.parent not in installed:
        fail(f"phaseloop imported from {package_dir}, not from the venv's site-packages")
    extension = Path(phaseloop.loop.__file__)
    if not extension.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        fail(f"phaseloop.loop is {extension}, not the compiled extension")
    if phaseloop.BACKEND != args.backend:
        fail(f"backend {phaseloop.BACKEND!r}, expected {args.backend!r}")

    answer = phaseloop.run(round_trip())
    if answer != b"ping\n":
        fail(f"the echo answered {answer!r}")

    script = Path(sysconfig.get_path("scripts")) / "phaseloop"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60,
                          check=False)
    if done.returncode != 0 or "serve" not in done.stdout:
        fail(f"`{script} --help` exited {done.returncode}:\n{done.stdout}{done.stderr}")

    print(f"wheel smoke: ok — phaseloop {phaseloop.__version__} from {package_dir}, "
          f"extension {extension.name}, backend {phaseloop.BACKEND}, "
          f"a loop run with a TCP round trip, `phaseloop --help`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
