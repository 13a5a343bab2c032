"""The exceptions ``phaseloop.workers`` raises or reports."""
from __future__ import annotations

__all__ = ["DataCloneError", "WorkerError"]


class DataCloneError(TypeError):
    """A message (or ``data=``, or a job's argument or result) cannot be copied to the
    other side: it does not pickle, or ``transfer=`` lists something that cannot move
    (Node's ``DataCloneError``). Raised by the call that posts it; nothing is sent."""


class WorkerError(RuntimeError):
    """A worker failed in a way that has no exception object of its own on this side:
    an exception that could not be copied back (``type_name`` says what it was), or a
    worker that exited while running a Pool job. The worker's traceback, when there is
    one, is the exception's last note (``__notes__``)."""

    def __init__(self, message: str, type_name: str | None = None) -> None:
        super().__init__(message)
        self.type_name = type_name
