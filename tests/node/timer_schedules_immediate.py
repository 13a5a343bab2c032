"""Twin of timer_schedules_immediate.js."""
import phaseloop

loop = phaseloop.new_event_loop()


def timer_1():
    print("timer 1")
    loop.call_immediate(immediate)


def immediate():
    print("immediate from timer 1")
    loop.stop()


when = loop.time() + 0.005
loop.call_at(when, timer_1)
loop.call_at(when, print, "timer 2")
loop.run_forever()
loop.close()
