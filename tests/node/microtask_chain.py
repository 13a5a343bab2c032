"""Twin of microtask_chain.js. phaseloop drains a snapshot of the ready queue
at a time (docs/phases.md), so a chain of call_soon callbacks advances one
link per drain and other callbacks can run between its links."""
import socket
import time

import phaseloop

loop = phaseloop.new_event_loop()
reader, writer = socket.socketpair()


def busy_wait(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def chain(name, n, last=None):
    i = 0

    def tick():
        nonlocal i
        i += 1
        print(f"{name} tick {i}")
        if i < n:
            loop.call_soon(tick)
        elif last is not None:
            last()
    loop.call_soon(tick)


def on_readable():
    reader.recv(1)
    loop.remove_reader(reader)
    loop.call_immediate(print, "immediate")
    chain("io", 6, lambda: loop.call_later(0.01, loop.stop))


def timer():
    print("timer")
    loop.add_reader(reader, on_readable)
    writer.send(b"x")


def immediate():
    loop.call_later(0.001, timer)
    busy_wait(0.003)    # the timer is due when this iteration reaches its timers phase
    chain("immediate", 6)


loop.call_immediate(immediate)
loop.run_forever()
loop.close()
reader.close()
writer.close()
