"""Broker paths, private dirs and the atomic 0600 writer."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from broker.errors import UnsafePathError
from broker.paths import broker_paths, ensure_private_dir, write_private_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_broker_home_overrides_every_path(tmp_path: Path) -> None:
    paths = broker_paths({"MCP_BROKER_HOME": str(tmp_path)})
    for p in (paths.config_file, paths.state_dir, paths.lock_dir, paths.log_dir):
        assert tmp_path in p.parents
    assert paths.endpoint_file.parent == paths.state_dir
    assert paths.audit_log.parent == paths.state_dir


def test_without_broker_home_paths_come_from_platformdirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "s"))
    paths = broker_paths({})
    assert paths.config_file == tmp_path / "c" / "mcp-oauth-broker" / "config.toml"
    assert paths.state_dir == tmp_path / "s" / "mcp-oauth-broker"
    assert not paths.state_dir.exists()  # computing paths creates nothing


def test_state_and_lock_dirs_are_created_private(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        paths = broker_paths({"MCP_BROKER_HOME": str(tmp_path / "home")}).ensure_private_dirs()
    finally:
        os.umask(old_umask)
    assert mode(paths.state_dir) == 0o700
    assert mode(paths.lock_dir) == 0o700


@pytest.mark.parametrize("bad_mode", [0o770, 0o707, 0o777, 0o1777])
def test_a_dir_others_can_write_to_is_refused(tmp_path: Path, bad_mode: int) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(bad_mode)
    with pytest.raises(UnsafePathError, match="chmod 700"):
        ensure_private_dir(state)
    assert mode(state) == bad_mode  # refused, not silently "fixed"


def test_a_readable_dir_is_tightened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    ensure_private_dir(state)
    assert mode(state) == 0o700


def test_a_symlink_instead_of_the_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "state").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafePathError):
        ensure_private_dir(tmp_path / "state")


def test_private_file_is_0600_and_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "endpoint.json"
    old_umask = os.umask(0)
    try:
        write_private_file(target, '{"v": 1}')
    finally:
        os.umask(old_umask)
    assert mode(target) == 0o600
    assert target.read_text() == '{"v": 1}'

    seen: set[str] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(target.read_text())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(200):
            write_private_file(target, ("x" * 5000 + str(i)) if i % 2 else "short")
    finally:
        stop.set()
        thread.join()
    assert all(s in ("short", '{"v": 1}') or (len(s) > 5000 and s.startswith("x")) for s in seen)
    assert [p.name for p in tmp_path.iterdir()] == ["endpoint.json"]  # no temp files left


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    write_private_file(target, b"old")
    with pytest.raises(TypeError):
        write_private_file(target, 5)  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]
