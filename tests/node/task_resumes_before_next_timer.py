"""Twin of task_resumes_before_next_timer.js: a Task woken by a timer resumes first."""
import asyncio

import phaseloop


async def sleeper(wake):
    await wake
    print("task resumed")


async def main():
    loop = asyncio.get_running_loop()
    wake = loop.create_future()
    done = loop.create_future()

    def timer_1():
        print("timer 1 resolves")
        wake.set_result(None)

    def timer_2():
        print("timer 2")
        done.set_result(None)

    when = loop.time() + 0.005
    loop.call_at(when, timer_1)
    loop.call_at(when, timer_2)
    task = loop.create_task(sleeper(wake))
    await done
    await task


loop = phaseloop.new_event_loop()
loop.run_until_complete(main())
loop.close()
