"""The event loop's phases, seen from the callbacks they run (event_loop_phases.js).

Node's setImmediate is loop.call_immediate, setTimeout is loop.call_later,
process.nextTick and promise callbacks are loop.call_soon (the ready queue),
and fs.readFile's thread pool is loop.run_in_executor.
"""
import asyncio

import phaseloop


def read_this_file():
    with open(__file__, "rb") as f:
        return f.read()


async def main():
    loop = asyncio.get_running_loop()

    print("main script")
    loop.call_soon(print, "microtask (process.nextTick)")
    promise = loop.create_future()
    promise.add_done_callback(lambda _: print("microtask (promise)"))
    promise.set_result(None)

    await loop.run_in_executor(None, read_this_file)      # fs.readFile
    print("poll: the file read completes")
    loop.call_later(0, print, "timers: setTimeout(0)")
    loop.call_immediate(print, "check: setImmediate")
    loop.call_soon(print, "microtask queued in the poll callback")
    await asyncio.sleep(0.01)          # Node's process lives while timers are pending


phaseloop.run(main())
