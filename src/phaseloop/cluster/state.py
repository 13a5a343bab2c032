"""What this process is in the cluster, shared by the cluster's modules.

``is_primary``, ``is_worker`` and ``worker`` change when a forked process
becomes a worker (child.py); read them as attributes of this module (or of
``phaseloop.cluster``), not by importing their values.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .worker_handle import Worker

logger = logging.getLogger("phaseloop.cluster")

#: True in the process that forks workers (every process until it becomes a worker).
is_primary: bool = True
#: True in a process made by :func:`fork`.
is_worker: bool = False
#: In a worker, the :class:`Worker` that stands for this process; None in the primary.
worker: "Worker | None" = None
#: In the primary, the live workers by id (a worker leaves it when it exits).
workers: dict[int, "Worker"] = {}
#: How an address the workers listen on through the primary reaches them.
SCHEDULING = ("shared", "reuse_port", "round_robin")
#: What :func:`setup_primary` set: ``target``, ``serialization`` ("json" or "pickle"),
#: ``scheduling`` (one of SCHEDULING).
settings: dict[str, Any] = {"target": None, "serialization": "json",
                            "scheduling": "round_robin"}
#: The id the next forked worker gets.
next_id = 1
#: In a worker: how to stop it when the primary asks (or is gone) and nobody
#: listens to ``disconnect``; set while the worker's target runs.
child_stop: list[Callable[[], None]] = [lambda: None]


class ClusterError(RuntimeError):
    """A cluster API used in the wrong place (fork in a worker, no target...)."""
