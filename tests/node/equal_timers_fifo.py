"""Twin of equal_timers_fifo.js."""
import phaseloop

loop = phaseloop.new_event_loop()
when = loop.time() + 0.010
for name in ["a", "b", "c", "d", "e"]:
    loop.call_at(when, print, "timer " + name)
loop.call_later(0.002, print, "timer early")
loop.call_at(when, loop.stop)
loop.run_forever()
loop.close()
