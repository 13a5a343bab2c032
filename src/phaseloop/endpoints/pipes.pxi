# endpoints/pipes.pxi — connect_read_pipe / connect_write_pipe (the transports:
# transports/pipe.pxi).


class _PipeMethods:

    async def connect_read_pipe(self, protocol_factory, pipe):
        """Read a pipe (file object) through a protocol: (transport, protocol)."""
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = _new_pipe_transport(self, pipe, protocol, waiter, None, _READ_PIPE)
        try:
            await waiter
        except:
            transport.close()
            raise
        return transport, protocol

    async def connect_write_pipe(self, protocol_factory, pipe):
        """Write to a pipe (file object) through a protocol: (transport, protocol)."""
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = _new_pipe_transport(self, pipe, protocol, waiter, None, _WRITE_PIPE)
        try:
            await waiter
        except:
            transport.close()
            raise
        return transport, protocol
