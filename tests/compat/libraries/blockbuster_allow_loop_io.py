"""pytest plugin: blockbuster lets phaseloop's loop make the calls it lets asyncio's make.

blockbuster (the blocking-call detector of anyio's and aiohttp's suites)
allows a few blocking calls inside named functions of asyncio's own loop:
os.read in base_events.subprocess_exec/subprocess_shell (the child's exec
status pipe in subprocess.Popen), os.stat in unix_events.create_unix_server,
os.stat and os.unlink in unix_events._stop_serving (a Unix server's socket
file), os.sendfile in base_events.sendfile and
unix_events._sock_sendfile_native_impl.  phaseloop makes the same calls from
compiled code, where blockbuster sees no frame to allow.

This plugin wraps those phaseloop.Loop and phaseloop.Server methods in
Python functions of the same names, defined here, and gives every
BlockBuster the suite makes (through blockbuster_ctx) the same list for
them.  Nothing else blockbuster checks changes.
"""
import contextlib
import functools

import phaseloop

# blockbuster function -> the methods (here) it may block in, as asyncio's list.
ALLOWED = {
    "os.read": ("subprocess_exec", "subprocess_shell"),
    "os.stat": ("create_unix_server", "close"),
    "os.unlink": ("close",),
    "os.sendfile": ("sendfile", "sock_sendfile"),
}


def _wrap(cls, name):
    original = getattr(cls, name)
    if getattr(original, "__wrapped_for_blockbuster__", False):
        return
    if name == "close":                      # Server.close: plain method
        def wrapper(self, *args, **kwargs):
            return original(self, *args, **kwargs)
    else:
        async def wrapper(self, *args, **kwargs):
            return await original(self, *args, **kwargs)
    wrapper.__code__ = wrapper.__code__.replace(co_name=name)
    functools.update_wrapper(wrapper, original)
    wrapper.__wrapped_for_blockbuster__ = True
    setattr(cls, name, wrapper)


def _allowing_phaseloop(blockbuster_ctx):
    """blockbuster_ctx, with phaseloop's methods added to its allowances."""
    @contextlib.contextmanager
    def ctx(*args, **kwargs):
        with blockbuster_ctx(*args, **kwargs) as detector:
            for function, methods in ALLOWED.items():
                detector.functions[function].can_block_in(__file__, set(methods))
            yield detector
    return ctx


def _install():
    for name in ("subprocess_exec", "subprocess_shell", "create_unix_server", "sendfile",
                 "sock_sendfile"):
        _wrap(phaseloop.Loop, name)
    _wrap(phaseloop.Server, "close")
    try:
        import blockbuster
    except ImportError:
        return
    blockbuster.blockbuster_ctx = _allowing_phaseloop(blockbuster.blockbuster_ctx)


# At import, which -p does before any conftest.py is imported: the suites'
# conftests import blockbuster_ctx from the package.
_install()
