"""Twin of poll_batch_microtasks.js. phaseloop runs the I/O callbacks of one
poll as a batch and drains the ready queue after it (docs/phases.md): two
readers ready in the same poll both run before either one's call_soon."""
import socket

import phaseloop

loop = phaseloop.new_event_loop()
pairs = {name: socket.socketpair() for name in ("a", "b")}


def on_readable(name):
    reader = pairs[name][0]
    reader.recv(1)
    loop.remove_reader(reader)
    print(f"{name}: data")
    loop.call_soon(print, f"{name}: microtask")


for name, (reader, writer) in pairs.items():
    writer.send(name.encode())          # both ready before the first poll
    loop.add_reader(reader, on_readable, name)
loop.call_later(0.01, loop.stop)
loop.run_forever()
loop.close()
for reader, writer in pairs.values():
    reader.close()
    writer.close()
