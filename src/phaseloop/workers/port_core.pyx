# cython: language_level=3
"""``PortCore``: the compiled half of a ``MessagePort`` (port.py), its per-message path.

A message between a parent and a thread worker crosses four steps: ``post_message``
copies it and hands it to the link, the link wakes the other loop, ``_dispatch`` takes
it from the inbox and calls the ``"message"`` listeners. Node does this in C++; in
Python the two ends cost about as much as the thread wakeup they wait for, and a round
trip runs two of each (docs/workers.md has the measurement). So the state these two
methods touch is typed here, and port.py's ``MessagePort`` subclasses this for the
rest of the API (receive, drain, transfer, close), which is not per message.

Both methods behave as their Python versions did: the plain-data copy (plain_copy.pyx)
within the process, else one ``pickle.dumps``; anything else (``transfer=``, a port or
shared buffer inside, a failure to report) goes to ``MessagePort._post_message_full``.
"""
import pickle

from phaseloop.workers.memory_link cimport MemoryLink
from phaseloop.workers.plain_copy cimport copy_plain

from ..emitter import report_listener_error
from .cloning import PROTOCOL, clone_state, decode
from .framing import MESSAGE

__all__ = ["PortCore"]


cdef class PortCore:
    """The fields and the per-message methods of a MessagePort."""

    cdef public object _link
    cdef public object _loop
    cdef public object _inbox        # deque of (payload, handles, size); see port.py
    cdef public object _receivers
    cdef public object _events       # EventEmitter's, typed here for _dispatch
    cdef public bint _closed
    cdef public bint _detached       # transferred away: dead here, without 'close'
    cdef public bint _dispatching

    def post_message(self, message, transfer=None):
        """Send a copy of ``message`` to the other end.

        ``transfer`` lists ports and bytes-like objects in ``message`` that move
        instead of being copied (bytes/bytearray/memoryview: no copy within a process;
        through the socket to a process, not pickled). DataCloneError, naming the
        type, if ``message`` does not pickle; nothing is sent then. On a closed port
        the message is dropped, as in Node. Returns at once: ``await drain()`` to wait
        while the other side is behind.
        """
        cdef tuple copied
        if not transfer and self._loop is not None and not self._closed:
            link = self._link
            if type(link) is MemoryLink:
                # Within the process: built-in data is copied in C and needs no
                # decoding on the other side.
                copied = copy_plain(message)
                if copied is not None:
                    (<MemoryLink>link).send_copy(copied[0], copied[1])
                    return
            if clone_state.encoding is None:
                # encode() inlined: one pickle.dumps. A port or shared buffer inside,
                # or a failure, takes the full path.
                try:
                    payload = pickle.dumps(message, PROTOCOL)
                except Exception:  # noqa: BLE001 - the full path reports it
                    pass
                else:
                    link.send(MESSAGE, payload, ())
                    return
        self._post_message_full(message, transfer)

    def _dispatch(self):
        """On this port's loop: deliver what the inbox holds to the listeners, or to
        the receive() waiters; finish closing after the last message."""
        cdef MemoryLink memory = None
        link = self._link
        if type(link) is MemoryLink:
            memory = <MemoryLink>link
            memory.wake_scheduled = False    # the in-process link's wakeup is this call
        if self._dispatching or self._detached:
            return
        self._dispatching = True
        try:
            inbox = self._inbox
            receivers = self._receivers
            while True:
                # remote_closed is read before the inbox (see memory_link.pyx)
                ending = memory.remote_closed if memory is not None else link.remote_closed
                if not inbox:
                    if ending and not self._closed:
                        self._finish_close()
                    return
                listeners = (<dict>self._events).get("message")
                if not listeners:
                    while receivers and receivers[0].done():
                        receivers.popleft()      # cancelled receive()
                    if not receivers:
                        return
                payload, handles, size = inbox.popleft()
                if handles is None:              # copied already (MemoryLink.send_copy)
                    message = payload
                else:
                    try:
                        message = pickle.loads(payload) if not handles else \
                            decode(payload, handles)
                    except Exception as exc:  # noqa: BLE001 - the message is lost, not the port
                        link.delivered(size)
                        self._message_error(exc)
                        continue
                if memory is not None:
                    memory.delivered(size)
                else:
                    link.delivered(size)
                if not listeners:
                    receivers.popleft().set_result(message)
                    continue
                # EventEmitter.emit, inlined: a snapshot of the listeners (a once()
                # listener removes itself), each one guarded.
                for fn in (listeners if len(listeners) == 1 else list(listeners)):
                    try:
                        fn(message)
                    except Exception as exc:  # noqa: BLE001 - reported, the others run
                        report_listener_error(
                            f"MessagePort 'message' listener {fn!r} raised", exc)
        finally:
            self._dispatching = False
