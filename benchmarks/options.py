"""The command-line options several benchmarks share, parsed one way.

``--loops a,b`` (:func:`add_loops_option`; any ``--x a,b`` list: :func:`split_names`),
``--cpu N|none`` (:func:`parse_cpu`), and the output options ``--json FILE``,
``--markdown`` and ``-v`` (:func:`add_output_options`).
"""
from __future__ import annotations

import argparse
from typing import Sequence

from benchmarks.loops import LOOP_NAMES

__all__ = ["add_loops_option", "add_output_options", "parse_cpu", "split_names"]


def split_names(text: str, known: Sequence[str], what: str) -> list[str]:
    """Parse 'a,b,c' into names from ``known``, in the given order."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(known)}")
    return names


def parse_cpu(text: str) -> int | None:
    """'0' -> 0; 'none' -> None (do not pin)."""
    return None if text.lower() in ("none", "-1", "") else int(text)


def add_loops_option(parser: argparse.ArgumentParser,
                     help: str = "comma-separated loops (default: %(default)s)") -> None:
    """``--loops``: some of LOOP_NAMES, in the order given (all by default)."""
    parser.add_argument("--loops", default=",".join(LOOP_NAMES),
                        type=lambda s: split_names(s, LOOP_NAMES, "loop"), help=help)


def add_output_options(parser: argparse.ArgumentParser, *,
                       markdown_help: str = "print the table as markdown",
                       verbose_help: str = "log every run on stderr") -> None:
    """``--json FILE``, ``--markdown`` and ``-v/--verbose``."""
    parser.add_argument("--json", metavar="FILE",
                        help="also write the results as JSON ('-': stdout)")
    parser.add_argument("--markdown", action="store_true", help=markdown_help)
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
