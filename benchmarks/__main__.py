"""``python -m benchmarks``: every comparison table in one command.

Runs, in order, the micro-benchmarks (``benchmarks.micro``), the TCP echo
servers (``benchmarks.echo``: protocol, streams and sock_* styles against a C
epoll floor, plus memory per idle connection), the HTTP/1.1 hello-world on
httptools driven by wrk (``benchmarks.http``), the same over TLS
(``benchmarks.http --tls``) and TLS echo round trips, handshakes and memory per
idle TLS connection (``benchmarks.tls``), each printing its table with ratios to
uvloop measured in the same run; then phaseloop.workers against Node's
worker_threads (``benchmarks.workers``, ratios to Node from the same run).
``--quick`` makes every part a short smoke run; the HTTP parts are skipped with
a note when wrk is missing.

``--plot`` runs nothing: it draws the README's tables (docs/benchmarks.json) as the
chart at the top of the README (docs/benchmarks.png) with matplotlib
(``benchmarks.plot``; ``--data`` and ``--out`` pick other files).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from typing import Sequence

from . import echo, http, micro, plot, tls, workers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke runs of every part")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--plot", action="store_true",
                        help="run nothing; draw the chart of the README's tables (needs matplotlib)")
    parser.add_argument("--data", help="with --plot: the chart JSON (default: docs/benchmarks.json)")
    parser.add_argument("--out", help="with --plot: the PNG to write (default: docs/benchmarks.png)")
    args = parser.parse_args(argv)
    if args.plot:
        return plot.main((["--data", args.data] if args.data else [])
                         + (["--out", args.out] if args.out else []))
    if args.data or args.out:
        parser.error("--data and --out go with --plot")
    common = (["--quick"] if args.quick else []) + (["--markdown"] if args.markdown else [])
    status = 0
    print("## Loop micro-benchmarks\n", flush=True)
    status |= micro.main(common)
    print("\n## TCP echo servers\n", flush=True)
    status |= echo.main(common)
    print("\n## HTTP/1.1 hello world\n", flush=True)
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (apt-get install wrk)")
    else:
        status |= http.main(common)
    print("\n## HTTPS hello world\n", flush=True)
    if shutil.which("wrk") is None or shutil.which("openssl") is None:
        print("skipped: wrk or the openssl command is not installed")
    else:
        status |= http.main(common + ["--tls"])
    print("\n## TLS (client and server on one loop)\n", flush=True)
    if shutil.which("openssl") is None:
        print("skipped: the openssl command is not installed")
    else:
        status |= tls.main(common)
    print("\n## Workers (phaseloop.workers vs Node's worker_threads)\n", flush=True)
    status |= workers.main(common)
    return status


if __name__ == "__main__":
    sys.exit(main())
