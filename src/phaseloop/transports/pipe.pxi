# transports/pipe.pxi — the pipe transports of connect_read_pipe / connect_write_pipe.
#
# A pipe runs on the same _StreamTransport as a socket (read()/writev() on
# the fd, same buffers and flow control); what users get is a thin wrapper
# that is an asyncio.ReadTransport / asyncio.WriteTransport, as asyncio's
# pipe transports are, so isinstance checks in user code keep working.

from asyncio import transports as _aio_transports


class ReadPipeTransport(_aio_transports.ReadTransport):
    """The read end of a pipe (or a socket or character device)."""

    def __init__(self, *args, **kwargs):
        raise TypeError("phaseloop transports are created by the loop")

    def __repr__(self):
        return repr(self._core)

    def is_reading(self):
        return self._core.is_reading()

    def pause_reading(self):
        self._core.pause_reading()

    def resume_reading(self):
        self._core.resume_reading()

    def set_protocol(self, protocol):
        self._core.set_protocol(protocol)

    def get_protocol(self):
        return self._core.get_protocol()

    def is_closing(self):
        return self._core.is_closing()

    def close(self):
        self._core.close()


class WritePipeTransport(_aio_transports.WriteTransport):
    """The write end of a pipe (or a socket or character device)."""

    def __init__(self, *args, **kwargs):
        raise TypeError("phaseloop transports are created by the loop")

    def __repr__(self):
        return repr(self._core)

    def write(self, data):
        self._core.write(data)

    def writelines(self, list_of_data):
        self._core.writelines(list_of_data)

    def write_eof(self):
        self._core.write_eof()

    def can_write_eof(self):
        return True

    def get_write_buffer_size(self):
        return self._core.get_write_buffer_size()

    def get_write_buffer_limits(self):
        return self._core.get_write_buffer_limits()

    def set_write_buffer_limits(self, high=None, low=None):
        self._core.set_write_buffer_limits(high, low)

    def set_protocol(self, protocol):
        self._core.set_protocol(protocol)

    def get_protocol(self):
        return self._core.get_protocol()

    def is_closing(self):
        return self._core.is_closing()

    def close(self):
        self._core.close()

    def abort(self):
        self._core.abort()


cdef object _new_pipe_transport(_Loop loop, pipe, protocol, waiter, extra, int kind):
    fd = pipe.fileno()
    mode = os.fstat(fd).st_mode
    is_fifo = _stat.S_ISFIFO(mode)
    is_socket = _stat.S_ISSOCK(mode)
    if not (is_fifo or is_socket or _stat.S_ISCHR(mode)):
        if kind == _READ_PIPE:
            raise ValueError("Pipe transport is for pipes/sockets only.")
        raise ValueError("Pipe transport is only for pipes, sockets and character devices")
    os.set_blocking(fd, False)
    extra = dict(extra) if extra else {}
    extra['pipe'] = pipe
    cls = ReadPipeTransport if kind == _READ_PIPE else WritePipeTransport
    public = cls.__new__(cls)
    public._extra = extra
    cdef _StreamTransport core = _StreamTransport.__new__(_StreamTransport)
    public._core = core
    core._public = public
    core._watch_hangup = kind == _WRITE_PIPE and (is_fifo or is_socket)
    core._setup(loop, pipe, fd, kind, protocol, extra, None)
    core._schedule_start(waiter)
    return public
