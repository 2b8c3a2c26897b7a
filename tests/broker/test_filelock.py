"""The cross-process file lock, tested with real processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.errors import LockTimeout, ServerUnreachable, as_answered
from broker.filelock import FileLock, lock_file_name, lock_for

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from broker.filelock import lock_for
    with lock_for(sys.argv[1], Path(sys.argv[2]), timeout=60):
        print("held", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock for key "refresh:A" until told to let go."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "refresh:A", str(tmp_path / "locks")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


@pytest.mark.integration
def test_a_lock_held_by_another_process_times_out_then_is_acquired(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    lock = lock_for("refresh:A", tmp_path / "locks", timeout=0.2)
    with pytest.raises(LockTimeout) as timed_out:
        lock.acquire()
    assert isinstance(as_answered(timed_out.value), ServerUnreachable)  # "retry later"
    assert not lock.locked
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "released"
    with lock_for("refresh:A", tmp_path / "locks", timeout=30) as acquired:
        assert acquired.locked
    assert not acquired.locked


@pytest.mark.integration
def test_other_keys_are_not_blocked(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with lock_for("refresh:B", tmp_path / "locks", timeout=0.2) as lock:
        assert lock.locked


@pytest.mark.integration
def test_a_killed_holder_releases_the_lock(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    holder.kill()
    holder.wait(timeout=30)
    with lock_for("refresh:A", tmp_path / "locks", timeout=30) as lock:
        assert lock.locked


def test_two_locks_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    first = FileLock(tmp_path / "x.lock", timeout=0.1)
    second = FileLock(tmp_path / "x.lock", timeout=0.1)
    with first, pytest.raises(LockTimeout):
        second.acquire()
    with second:
        pass


def test_lock_is_not_reentrant_and_file_names_hide_the_key(tmp_path: Path) -> None:
    lock = lock_for("https://secret-host.example/mcp", tmp_path / "locks")
    assert "secret-host" not in lock.path.name
    assert lock.path.name == lock_file_name("https://secret-host.example/mcp")
    with lock, pytest.raises(RuntimeError):
        lock.acquire()
