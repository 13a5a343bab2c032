"""Copying a message to the other side: Node's structured clone, done with pickle.

``encode(message, transfer)`` pickles ``message`` (protocol 5) and returns the payload
and its *handles*: the objects that travel beside the bytes instead of inside them.

- a :class:`~phaseloop.workers.SharedBuffer` anywhere in the message (shared, never
  copied: its ``__reduce_ex__`` calls :func:`add_handle`);
- a :class:`~phaseloop.workers.MessagePort` listed in ``transfer`` (moved);
- a ``bytes``/``bytearray``/``memoryview`` listed in ``transfer`` (moved without
  pickling it: through ``persistent_id``).

A link (in-process or a socket) carries the handles its own way, and the other side
calls ``decode(payload, handles)``. Both run with this thread's *clone state* set, so
that the ``__reduce_ex__`` of a port or shared buffer finds where to register itself
and the reconstructor finds the object again.

The plain case (no handles) is one ``pickle.dumps`` and one ``pickle.loads``: the
persistent_id hook, which costs a Python call per pickled object, is used only when
``transfer`` lists bytes.
"""
from __future__ import annotations

import io
import pickle
import threading
import traceback
from typing import Any, Iterable

from .exceptions import DataCloneError, WorkerError

__all__ = ["add_handle", "check_transfer", "clone_state", "decode", "encode",
           "exception_from_record",
           "exception_record", "handle_at", "is_listed_in_transfer"]

PROTOCOL = pickle.HIGHEST_PROTOCOL
BUFFER_TYPES = (bytes, bytearray, memoryview)


class _CloneState(threading.local):
    encoding: list | None = None       # handles of the message being encoded
    transfer_ids: frozenset = frozenset()
    decoding: list | None = None       # handles of the message being decoded


#: This thread's clone state: ``encoding`` is None unless a message is being encoded.
clone_state = _CloneState()


def check_transfer(transfer: Iterable[Any] | None) -> list:
    """Validate a ``transfer=`` list: bytes-likes and ports, each once."""
    if transfer is None:
        return []
    if isinstance(transfer, (str, bytes, bytearray, memoryview)) or \
            not hasattr(transfer, "__iter__"):
        raise TypeError(f"transfer must be a list, not {type(transfer).__name__}")
    items = list(transfer)
    seen: set[int] = set()
    for item in items:
        if not isinstance(item, BUFFER_TYPES) and not hasattr(item, "_prepare_transfer"):
            raise DataCloneError(
                "transfer= takes bytes, bytearray, memoryview and MessagePort objects, not "
                f"{type(item).__name__}" + (" (a SharedBuffer is shared by posting it, "
                                            "never transferred)"
                                            if hasattr(item, "_shared_fd") else ""))
        if id(item) in seen:
            raise DataCloneError(f"transfer= lists the same {type(item).__name__} twice")
        seen.add(id(item))
    return items


class _TransferPickler(pickle.Pickler):
    """Pickles the buffers listed in ``transfer`` as references to handles."""

    def __init__(self, file: io.BytesIO, buffer_ids: set[int], handles: list) -> None:
        super().__init__(file, PROTOCOL)
        self._buffer_ids = buffer_ids
        self._handles = handles
        self._index: dict[int, int] = {}      # a buffer met twice travels once

    def persistent_id(self, obj: Any) -> Any:
        key = id(obj)
        if key not in self._buffer_ids or not isinstance(obj, BUFFER_TYPES):
            return None
        index = self._index.get(key)
        if index is None:
            self._handles.append(obj)
            index = self._index[key] = len(self._handles) - 1
        return index


class _HandleUnpickler(pickle.Unpickler):
    def __init__(self, payload: bytes, handles: list) -> None:
        super().__init__(io.BytesIO(payload))
        self._handles = handles

    def persistent_load(self, pid: Any) -> Any:
        return self._handles[pid]


class _NeedsHandles(TypeError):
    """A port or shared buffer pickled with no clone state: encode() then encodes again
    with the state set; anywhere else, the TypeError says what went wrong."""


def encode(message: Any, transfer: Any) -> tuple[bytes, list]:
    """Pickle ``message``; return ``(payload, handles)``. ``transfer`` comes from
    :func:`check_transfer`. DataCloneError, naming the type, when it cannot be pickled.

    A message that needs no handles is one ``pickle.dumps`` (``MessagePort.post_message``
    inlines that case): a port or shared buffer inside raises _NeedsHandles from its
    ``__reduce_ex__``, and any failure is pickled again here to be reported."""
    if not transfer and clone_state.encoding is None:
        try:
            return pickle.dumps(message, PROTOCOL), []
        except Exception:  # noqa: BLE001 - the full path below says what went wrong
            pass
    return _encode_with_handles(message, transfer)


def _encode_with_handles(message: Any, transfer: Any) -> tuple[bytes, list]:
    handles: list = []
    previous = (clone_state.encoding, clone_state.transfer_ids)
    clone_state.encoding = handles
    clone_state.transfer_ids = frozenset(id(t) for t in transfer)
    try:
        buffer_ids = {id(t) for t in transfer if isinstance(t, BUFFER_TYPES)}
        if buffer_ids:
            out = io.BytesIO()
            _TransferPickler(out, buffer_ids, handles).dump(message)
            payload = out.getvalue()
        else:
            payload = pickle.dumps(message, PROTOCOL)
    except DataCloneError:
        raise
    except Exception as exc:  # noqa: BLE001 - every pickling failure is a clone error
        raise _clone_error(message, exc) from exc
    finally:
        clone_state.encoding, clone_state.transfer_ids = previous
    return payload, handles


def _clone_error(message: Any, exc: Exception) -> DataCloneError:
    return DataCloneError(f"cannot copy a {type(message).__name__} to the other side: "
                          f"{type(exc).__name__}: {exc}")


def decode(payload: bytes, handles: list) -> Any:
    """Rebuild a message from :func:`encode`'s payload and the handles as they arrived."""
    if not handles:
        return pickle.loads(payload)
    previous = clone_state.decoding
    clone_state.decoding = handles
    try:
        return _HandleUnpickler(payload, handles).load()
    finally:
        clone_state.decoding = previous


def add_handle(obj: Any) -> int:
    """For ``__reduce_ex__``: put ``obj`` beside the message being encoded; its index."""
    handles = clone_state.encoding
    if handles is None:
        raise _NeedsHandles(f"a {type(obj).__name__} can only be copied by post_message "
                            "(or as a worker's data)")
    handles.append(obj)
    return len(handles) - 1


def is_listed_in_transfer(obj: Any) -> bool:
    """Whether ``obj`` is in the ``transfer=`` list of the message being encoded."""
    return id(obj) in clone_state.transfer_ids


def handle_at(index: int) -> Any:
    """The reconstructor of a handle: the object that arrived in its place."""
    handles = clone_state.decoding
    if handles is None:
        raise pickle.UnpicklingError("a port or shared buffer outside a posted message")
    return handles[index]


# ---- exceptions, copied back to the parent ---------------------------------------------------


def exception_record(exc: BaseException) -> tuple:
    """What travels for an exception: ``(pickle or None, type name, message, traceback)``.
    Plain bytes and strings, so it always crosses, even when ``exc`` does not pickle."""
    text = "".join(traceback.format_exception(exc))
    try:
        data: bytes | None = pickle.dumps(exc, PROTOCOL)
    except Exception:  # noqa: BLE001 - the type name and message still travel
        data = None
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else \
        f"{kind.__module__}.{kind.__qualname__}"
    return (data, name, str(exc), text)


def exception_from_record(record: tuple, where: str = "the worker") -> BaseException:
    """The exception of :func:`exception_record` on this side: a copy of the original
    when it unpickles here, a :class:`WorkerError` naming its type otherwise; its last
    note is the traceback as text."""
    data, name, message, text = record
    exc: Any = None
    if data is not None:
        try:
            exc = pickle.loads(data)
        except Exception:  # noqa: BLE001 - fall back to the type name and message
            exc = None
    if not isinstance(exc, BaseException):
        exc = WorkerError(f"{name}: {message}", name)
    exc.add_note(f"Traceback in {where}:\n{text.rstrip()}")
    return exc
