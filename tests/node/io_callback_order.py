"""Twin of io_callback_order.js: call_soon, then call_immediate, then call_later(0)."""
import socket

import phaseloop

loop = phaseloop.new_event_loop()
reader, writer = socket.socketpair()


def on_timer():
    print("timer")
    loop.stop()


def on_readable():
    reader.recv(1)
    loop.remove_reader(reader)
    print("io callback")
    # Scheduled in the reverse of the order they run.
    loop.call_later(0, on_timer)
    loop.call_immediate(print, "immediate")
    loop.call_soon(print, "microtask")


loop.add_reader(reader, on_readable)
writer.send(b"x")
loop.run_forever()
loop.close()
reader.close()
writer.close()
