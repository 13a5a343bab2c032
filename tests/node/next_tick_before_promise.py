"""Twin of next_tick_before_promise.js. phaseloop has one ready queue, FIFO:
the callback queued first runs first (docs/phases.md)."""
import phaseloop

loop = phaseloop.new_event_loop()
promise = loop.create_future()
promise.add_done_callback(lambda _: print("promise callback"))
promise.set_result(None)                # queues the done callback with call_soon
loop.call_soon(print, "nextTick callback")
loop.call_soon(loop.stop)
loop.run_forever()
loop.close()
