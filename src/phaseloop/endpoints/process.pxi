# endpoints/process.pxi — subprocess_exec / subprocess_shell (the transport:
# transports/subprocess.pxi).


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
