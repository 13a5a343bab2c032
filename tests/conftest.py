"""Shared fixtures: every loop behaviour test runs on phaseloop and on asyncio.

`loop` is parametrized over the two loops under test (`phaseloop` and
`asyncio`, the stdlib's default selector loop).  A test that needs a
phaseloop-only API (call_immediate, add_idle, metrics...) takes
`phase_loop` instead. The TLS tests take `certificate`, `server_ctx` and
`client_ctx`. A test that needs phaseloop.errors' reports takes
`uncaught_reports`; every test must leave phaseloop.errors as it found it.
"""
import asyncio
import gc
import resource
import shutil
import socket
import ssl
import subprocess

import pytest

import phaseloop
from phaseloop import errors
from support.cluster import Primary, assert_gone
from support.loops import LOOP_FACTORIES
from support.hung_tests import pytest_addoption, pytest_timeout_set_timer  # noqa: F401 (hooks)


@pytest.fixture(autouse=True)
def errors_left_as_found():
    """phaseloop.errors' hooks are process-wide: a test that installs them
    and does not undo it would run every later test's loops with them."""
    mode_before = errors.mode()
    yield
    assert errors.mode() == mode_before, "the test left phaseloop.errors installed"


@pytest.fixture
def uncaught_reports():
    """(exception, context) for each report to the uncaughtException hook.
    Registering a handler installs the hooks (as process.on does in Node);
    both are undone after the test."""
    mode_before = errors.mode()
    seen: list = []
    handler = errors.on_uncaught_exception(lambda exc, ctx: seen.append((exc, ctx)))
    yield seen
    errors.off(handler)
    if mode_before is None:
        errors.uninstall()


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def loop_name(request):
    return request.param


@pytest.fixture
def loop(loop_name):
    """A fresh loop of each kind, set as the current loop, closed after."""
    lp = LOOP_FACTORIES[loop_name]()
    asyncio.set_event_loop(lp)
    try:
        yield lp
    finally:
        if not lp.is_closed():
            if not lp.is_running():
                lp.run_until_complete(lp.shutdown_asyncgens())
            lp.close()
        asyncio.set_event_loop(None)
        gc.collect()


@pytest.fixture
def phase_loop():
    """A phaseloop.Loop alone, for the Node phase API asyncio does not have."""
    lp = phaseloop.new_event_loop()
    asyncio.set_event_loop(lp)
    try:
        yield lp
    finally:
        if not lp.is_closed():
            lp.close()
        asyncio.set_event_loop(None)
        gc.collect()


@pytest.fixture
def socket_pair():
    """Two connected non-blocking sockets (socket.socketpair), closed after."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture
def ref_loop():
    """asyncio's own loop, the reference for exception types."""
    lp = asyncio.new_event_loop()
    try:
        yield lp
    finally:
        lp.close()


@pytest.fixture
def many_fds():
    """Raise the soft RLIMIT_NOFILE for 1,000 connections (both ends here)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is under {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def primaries():
    """Primaries (support.cluster.Primary) a test starts: stopped after it,
    and none of their workers may be left."""
    started: list[Primary] = []
    yield started
    for p in started:
        p.close()
    for p in started:   # a primary killed by a signal could not reap its workers
        assert_gone(p.worker_pids(), orphans=p.proc.returncode < 0)


# ---- TLS: a self-signed certificate for localhost/127.0.0.1, made once per session
# with the `openssl` command (the tests that use it fail where it is missing).


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """(cert.pem, key.pem) of a self-signed EC certificate for localhost."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the TLS tests need the openssl command (apt-get install openssl)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30)
    return str(cert), str(key)


@pytest.fixture
def server_ctx(certificate):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certificate)
    return ctx


@pytest.fixture
def client_ctx(certificate):
    return ssl.create_default_context(cafile=certificate[0])
