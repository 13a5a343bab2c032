# transports/subprocess.pxi — the subprocess transport and how a child's exit is seen.
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
