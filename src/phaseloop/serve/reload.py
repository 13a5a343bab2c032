"""``phaseloop serve --reload``: development mode, restarted on every code change.

The command runs again without ``--reload`` in a child process, and
``watchfiles.run_process`` (the library uvicorn's ``--reload`` uses) watches
the ``--reload-dir`` folders (the current one by default) for changes to
Python files: on one it stops the child with SIGINT, which shuts the cluster
down gracefully, waits for it, and starts a new one, which imports the
changed code. (The cluster's SIGHUP rolling restart would not do: its workers
are forked from a primary that imported the old code.) Ctrl-C reaches the
whole process group: the child shuts down, the watcher stops, the command
exits 0.
"""
from __future__ import annotations

import logging
import shlex
import sys
from typing import Any, Sequence

__all__ = ["run_reloading"]

logger = logging.getLogger("phaseloop.serve")


def _watchfiles() -> Any:
    try:
        import watchfiles
    except ImportError:
        raise RuntimeError("--reload needs watchfiles: pip install watchfiles") from None
    return watchfiles


def run_reloading(child_argv: Sequence[str], directories: Sequence[str]) -> int:
    """Run ``phaseloop`` with ``child_argv`` until Ctrl-C, again after each change."""
    watchfiles = _watchfiles()
    command = shlex.join([sys.executable, "-m", "phaseloop", *child_argv])

    def changed(changes: set) -> None:
        names = sorted({path for _change, path in changes})
        logger.warning("%s changed: restarting", ", ".join(names[:3]) +
                       (" and %d more" % (len(names) - 3) if len(names) > 3 else ""))

    logger.info("watching %s for changes (Ctrl-C stops)", ", ".join(directories))
    watchfiles.run_process(*directories, target=command, target_type="command",
                           callback=changed, watch_filter=watchfiles.PythonFilter(),
                           debounce=400, sigint_timeout=15)
    return 0
