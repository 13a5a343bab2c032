"""Twin of immediate_chain.js."""
import time

import phaseloop

loop = phaseloop.new_event_loop()


def busy_wait(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def last_immediate():
    print("immediate 3 (next iteration)")
    loop.stop()


def first_immediate():
    print("immediate 1")
    loop.call_immediate(last_immediate)
    loop.call_later(0.001, print, "timer (this iteration)")
    busy_wait(0.003)  # the timer is due when this iteration reaches its timers phase
    loop.call_soon(print, "microtask from immediate 1")


loop.call_immediate(first_immediate)
loop.call_immediate(print, "immediate 2")
loop.run_forever()
loop.close()
