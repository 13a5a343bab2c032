"""The worker's side of forking: a forked process becomes a worker and runs its target."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import traceback
from typing import Any, Callable

import phaseloop

from ..forking import reset_signals_in_child
from . import state
from .channel import _KIND_INTERNAL
from .events import remove_all_listeners
from .round_robin import close_in_child as _close_round_robin_in_child
from .shared_servers import _shared_servers
from .worker_handle import Worker


def _become_worker(wid: int, parent_sock: socket.socket, child_sock: socket.socket,
                   handoff_pairs: list, env: dict[str, str] | None,
                   target: Callable[[], Any], old_mask: Any,
                   ignored_signals: tuple[int, ...] = ()) -> None:
    status = 1
    interrupted = False
    try:
        try:
            reset_signals_in_child()
            # Set while the fork's mask still blocks them: one already pending is
            # discarded, so no moment of the start-up takes its default action.
            for sig in ignored_signals:
                signal.signal(sig, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            asyncio.events._set_running_loop(None)
            asyncio.set_event_loop(None)
            parent_sock.close()
            for w in list(state.workers.values()):
                w._close_in_child()
            _shared_servers.close_in_child()
            _close_round_robin_in_child()
            state.workers.clear()
            remove_all_listeners()
            handoff = []
            for a, b in handoff_pairs:
                a.close()
                handoff.append(b)
            if env:
                os.environ.update({str(k): str(v) for k, v in env.items()})
            state.is_primary, state.is_worker = False, True
            state.worker = Worker(wid, os.getpid(), child_sock, in_primary=False)
            state.worker._handoff = handoff
            status = phaseloop.run(_worker_process_main(target))
        except SystemExit as exc:
            code = exc.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
            if not isinstance(code, int) and code is not None:
                print(code, file=sys.stderr)
        except KeyboardInterrupt:
            # Ctrl-C reaches every process of the group: a worker ends by the
            # signal, with no traceback, as a Node worker does.
            interrupted = True
        except BaseException:  # noqa: BLE001 - the process ends here either way
            traceback.print_exc()
            status = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            if interrupted:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGINT)
        finally:
            os._exit(status if isinstance(status, int) else 0)


async def _worker_process_main(target: Callable[[], Any]) -> int:
    loop = asyncio.get_running_loop()
    worker = state.worker
    assert worker is not None
    task = asyncio.current_task()
    stopping = [False]

    def stop() -> None:
        # Default reaction to the primary's disconnect (no listener) or a lost primary.
        if not stopping[0] and task is not None:
            stopping[0] = True
            task.cancel()

    state.child_stop[0] = stop
    worker._channel.attach(loop)
    worker._channel.send(_KIND_INTERNAL, {"cmd": "online"})
    try:
        result = target()
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
    except asyncio.CancelledError:
        if not stopping[0]:
            raise
        result = 0
    finally:
        state.child_stop[0] = lambda: None
    if not worker._channel.closed:
        # Let queued messages reach the primary before the process ends.
        deadline = loop.time() + 2.0
        while worker._channel.pending and loop.time() < deadline:
            await asyncio.sleep(0.005)
        worker._channel.close()
    return result if isinstance(result, int) else 0
