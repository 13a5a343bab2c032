"""Display a tick every 20 ms with call_later() (the "current date" example, shortened)."""
import asyncio


def display_tick(n, end_time, loop, done):
    # The real example prints datetime.datetime.now(); a tick count keeps the
    # output the same on every run.
    print(f"tick {n}")
    if loop.time() + 0.02 < end_time and n < 4:
        loop.call_later(0.02, display_tick, n + 1, end_time, loop, done)
    else:
        done.set_result(n)


async def main():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    end_time = loop.time() + 5.0
    started = loop.time()
    loop.call_soon(display_tick, 0, end_time, loop, done)
    last = await done
    print(f"last tick: {last}")
    print("took at least 79 ms:", loop.time() - started >= 0.079)


asyncio.run(main())
