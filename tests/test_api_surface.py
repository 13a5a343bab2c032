"""phaseloop.Loop has the whole event-loop API of the running Python.

A method phaseloop does not define would be inherited from
asyncio.AbstractEventLoop and raise NotImplementedError when called; a
keyword asyncio added in a new version would raise TypeError.  These tests
fail (never skip) on either, for the Python they run on, so a missing
method turns CI red on the version that added it.
"""
import asyncio
import inspect

import pytest

import phaseloop


def public_methods(cls):
    return sorted(name for name in dir(cls)
                  if not name.startswith("_") and callable(getattr(cls, name)))


def test_every_abstract_event_loop_method_is_implemented():
    inherited = [name for name in public_methods(asyncio.AbstractEventLoop)
                 if getattr(phaseloop.Loop, name) is getattr(asyncio.AbstractEventLoop, name)]
    assert inherited == [], "left to AbstractEventLoop (NotImplementedError)"


#: The loop asyncio.run() uses on Unix: what a user switches from.
REFERENCE = asyncio.SelectorEventLoop


def test_every_public_method_of_asyncios_loop_exists():
    missing = [name for name in public_methods(REFERENCE)
               if not hasattr(phaseloop.Loop, name)]
    assert missing == []


def parameters(func):
    return inspect.signature(func).parameters


@pytest.mark.parametrize("name", public_methods(REFERENCE))
def test_every_parameter_asyncio_takes_is_accepted(name):
    theirs = parameters(getattr(REFERENCE, name))
    ours = parameters(getattr(phaseloop.Loop, name))
    takes_any_keyword = any(p.kind is p.VAR_KEYWORD for p in ours.values())
    takes_any_positional = any(p.kind is p.VAR_POSITIONAL for p in ours.values())
    missing = []
    for param in theirs.values():
        if param.kind is param.VAR_POSITIONAL:
            if not takes_any_positional:
                missing.append(f"*{param.name}")
        elif param.kind is param.VAR_KEYWORD:
            if not takes_any_keyword:
                missing.append(f"**{param.name}")
        elif param.name not in ours and not takes_any_keyword:
            missing.append(param.name)
    assert missing == [], f"{name}{inspect.signature(getattr(phaseloop.Loop, name))}"
