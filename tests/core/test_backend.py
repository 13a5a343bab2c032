"""The build's I/O backend is the one asked for (CI builds epoll and poll)."""
import os

import pytest

import phaseloop


def test_backend_is_known():
    assert phaseloop.BACKEND in {"epoll", "poll", "kqueue"}


@pytest.mark.skipif(not os.environ.get("PHASELOOP_BACKEND"), reason="no backend requested")
def test_backend_is_the_requested_one():
    assert phaseloop.BACKEND == os.environ["PHASELOOP_BACKEND"]
