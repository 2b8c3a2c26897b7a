"""The unit/integration line, enforced: a test not marked ``integration`` (or ``conformance``)
that opens a network socket or starts a process fails, naming where it did.

Loaded as a pytest plugin by ``tests/conftest.py``. During the setup, call and teardown of an
unmarked test, ``socket.socket`` and ``subprocess.Popen`` record every network socket (any family
but ``AF_UNIX``: the event loop's self-pipe and D-Bus are local plumbing) and every process
started, from any thread. Nothing is refused, so code under test that would swallow an error
cannot hide the use; the test fails once its phase is over. Fixtures shared by a module or session
count for the first unmarked test that sets them up.
"""

from __future__ import annotations

import socket
import subprocess
import traceback
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

MARKS = ("integration", "conformance")


def _caller() -> str:
    """The innermost frame outside this module, the socket module and subprocess."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if frame.filename != __file__ and not frame.filename.endswith(
            ("/socket.py", "/subprocess.py")
        ):
            return f"{frame.filename}:{frame.lineno} ({frame.name})"
    return "?"


@contextmanager
def _recording() -> Iterator[list[str]]:
    used: list[str] = []
    socket_init = socket.socket.__init__
    popen_init = subprocess.Popen.__init__

    def guarded_socket(self: socket.socket, *args: Any, **kwargs: Any) -> None:
        socket_init(self, *args, **kwargs)
        if self.family != socket.AF_UNIX:
            used.append(f"a {self.family.name} socket at {_caller()}")

    def guarded_popen(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        used.append(f"a process {args!r} at {_caller()}")
        popen_init(self, args, *rest, **kwargs)

    socket.socket.__init__ = guarded_socket  # type: ignore[method-assign]
    subprocess.Popen.__init__ = guarded_popen  # type: ignore[method-assign]
    try:
        yield used
    finally:
        socket.socket.__init__ = socket_init  # type: ignore[method-assign]
        subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]


def _guarded(item: pytest.Item, phase: str) -> Generator[None, Any, Any]:
    if any(item.get_closest_marker(mark) for mark in MARKS):
        return (yield)
    with _recording() as used:
        result = yield
    if used:
        listed = "\n  ".join(dict.fromkeys(used))
        pytest.fail(
            f"{phase}: a test not marked integration opened\n  {listed}\n"
            "mark it @pytest.mark.integration (real I/O) or give it a fake",
            pytrace=False,
        )
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item, "setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item, "call"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item, "teardown"))
