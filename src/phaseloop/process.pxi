# process.pxi — subprocess_exec / subprocess_shell.
#
# The transport is asyncio's BaseSubprocessTransport (its pipes come from
# our connect_read_pipe / connect_write_pipe); the child's exit is seen
# through a pidfd watched by the loop (Linux 5.3+), so no SIGCHLD handler
# and no thread is involved. Where pidfd_open is missing, one thread per
# child waits in waitpid() and wakes the loop.

import subprocess as _subprocess
from asyncio import base_subprocess as _base_subprocess

cdef object _pidfd_open = getattr(os, 'pidfd_open', None)


class SubprocessTransport(_base_subprocess.BaseSubprocessTransport):
    """A child process with its stdin/stdout/stderr pipes (asyncio.SubprocessTransport)."""

    def _start(self, args, shell, stdin, stdout, stderr, bufsize, **kwargs):
        self._proc = _subprocess.Popen(
            args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
            universal_newlines=False, bufsize=bufsize, **kwargs)


def _waitpid(pid):
    """The child's exit code (waiting for it), or None if someone else reaped it."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status)


def _report_exit(loop, transport, pid, returncode):
    """On the loop: tell the transport its child exited."""
    if returncode is None:
        # Reaped by someone else (Popen.poll in close()): take what they saw.
        returncode = transport._proc.returncode
        if returncode is None:
            logger.warning("Unknown child process pid %d, will report returncode 255", pid)
            returncode = 255
    if not loop.is_closed():
        transport._process_exited(returncode)


def _on_pidfd_readable(loop, transport, pid, pidfd):
    loop.remove_reader(pidfd)
    loop._child_pidfds.discard(pidfd)
    os.close(pidfd)
    _report_exit(loop, transport, pid, _waitpid(pid))   # a zombie now: does not block


def _wait_in_thread(loop, transport, pid):
    returncode = _waitpid(pid)
    try:
        loop.call_soon_threadsafe(_report_exit, loop, transport, pid, returncode)
    except RuntimeError:
        pass   # the loop is closed: nobody is waiting any more


class _ProcessMethods:

    def _watch_child(self, transport):
        pid = transport.get_pid()
        if _pidfd_open is not None:
            try:
                pidfd = _pidfd_open(pid)
            except OSError:
                pidfd = -1
            if pidfd >= 0:
                self._child_pidfds.add(pidfd)
                self.add_reader(pidfd, _on_pidfd_readable, self, transport, pid, pidfd)
                return
        threading.Thread(target=_wait_in_thread, args=(self, transport, pid),
                         name=f"phaseloop-waitpid-{pid}", daemon=True).start()

    async def _make_subprocess_transport(self, protocol, args, shell, stdin, stdout, stderr,
                                         bufsize, extra=None, **kwargs):
        waiter = self.create_future()
        transport = SubprocessTransport(self, protocol, args, shell, stdin, stdout, stderr,
                                        bufsize, waiter=waiter, extra=extra, **kwargs)
        self._watch_child(transport)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transport.close()
            await transport._wait()
            raise
        return transport

    async def subprocess_exec(self, protocol_factory, program, *args,
                              stdin=_subprocess.PIPE, stdout=_subprocess.PIPE,
                              stderr=_subprocess.PIPE, universal_newlines=False, shell=False,
                              bufsize=0, encoding=None, errors=None, text=None, **kwargs):
        """Start program with args: (SubprocessTransport, protocol)."""
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if shell:
            raise ValueError("shell must be False")
        if bufsize != 0:
            raise ValueError("bufsize must be 0")
        if text:
            raise ValueError("text must be False")
        if encoding is not None:
            raise ValueError("encoding must be None")
        if errors is not None:
            raise ValueError("errors must be None")
        protocol = protocol_factory()
        transport = await self._make_subprocess_transport(
            protocol, (program,) + args, False, stdin, stdout, stderr, bufsize, **kwargs)
        return transport, protocol

    async def subprocess_shell(self, protocol_factory, cmd, *, stdin=_subprocess.PIPE,
                               stdout=_subprocess.PIPE, stderr=_subprocess.PIPE,
                               universal_newlines=False, shell=True, bufsize=0,
                               encoding=None, errors=None, text=None, **kwargs):
        """Run cmd through the shell: (SubprocessTransport, protocol)."""
        if not isinstance(cmd, (bytes, str)):
            raise ValueError("cmd must be a string")
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if not shell:
            raise ValueError("shell must be True")
        if bufsize != 0:
            raise ValueError("bufsize must be 0")
        if text:
            raise ValueError("text must be False")
        if encoding is not None:
            raise ValueError("encoding must be None")
        if errors is not None:
            raise ValueError("errors must be None")
        protocol = protocol_factory()
        transport = await self._make_subprocess_transport(
            protocol, cmd, True, stdin, stdout, stderr, bufsize, **kwargs)
        return transport, protocol
