"""Twin of timer_microtask.js: call_soon from a timer runs before the next due timer."""
import phaseloop

loop = phaseloop.new_event_loop()


def timer_1():
    print("timer 1")
    loop.call_soon(print, "microtask from timer 1")


def timer_2():
    print("timer 2")
    loop.stop()


when = loop.time() + 0.005
loop.call_at(when, timer_1)
loop.call_at(when, timer_2)
loop.run_forever()
loop.close()
