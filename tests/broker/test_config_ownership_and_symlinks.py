"""Whoever can write the config chooses which servers and authorization servers the broker trusts:
a config file or broker home that another user owns or could write is refused, with the command
that fixes it. Every file the broker writes is opened without following symlinks, so a link
planted in its directories (``audit.log`` → a file of the user's) never redirects a write.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from broker import cli
from broker.api.audit import AuditLog
from broker.filelock import FileLock
from broker.paths import broker_paths
from tests.support.realparts import require

NOBODY = 65534
CONFIG = '[[servers]]\nurl = "https://mcp.example/mcp"\n'


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "home"
    monkeypatch.setenv("MCP_BROKER_HOME", str(root))
    broker_paths().ensure_private_dirs()
    root.chmod(0o700)
    (root / "config.toml").write_text(CONFIG)
    (root / "config.toml").chmod(0o600)
    return root


def status(capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    code = cli.main(["status"], out=out)
    return code, out.getvalue(), capsys.readouterr().err


def test_a_safe_config_is_read(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = status(capsys)
    assert code == 0 and "https://mcp.example/mcp" in out


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602], ids=["0666", "0620", "0602"])
def test_a_config_file_others_can_write_is_refused_with_the_fix(
    home: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    config = home / "config.toml"
    config.chmod(mode)

    code, out, err = status(capsys)

    assert code == 3 and out == ""
    assert f"Fix it with: chmod 600 {config}" in err
    assert len(err.strip().splitlines()) == 1


def test_a_broker_home_others_can_write_is_refused_with_the_fix(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home.chmod(0o777)

    code, out, err = status(capsys)

    assert code == 3 and out == ""
    assert f"Fix it with: chmod go-w {home}" in err


@pytest.mark.parametrize("which", ["config.toml", "."])
def test_a_config_or_home_owned_by_another_user_is_refused_with_the_fix(
    home: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    require(os.geteuid() == 0, "root (to hand a file to another user)", "run the tests as root")
    path = home / which
    os.chown(path, NOBODY, NOBODY)

    code, out, err = status(capsys)

    assert code == 3 and out == ""
    assert "belongs to another user" in err and "Fix it with: sudo chown" in err


def test_a_planted_audit_log_symlink_is_not_followed(home: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's own file\n")
    audit = broker_paths().audit_log
    audit.symlink_to(victim)

    AuditLog(audit).record("cursor", "https://mcp.example/mcp", "issued")

    assert victim.read_text() == "the user's own file\n"
    assert audit.is_symlink()


def test_a_planted_lock_file_symlink_is_not_followed(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "created-elsewhere"
    lock_path = broker_paths().lock_dir / "planted.lock"
    lock_path.symlink_to(target)

    with pytest.raises(OSError):
        FileLock(lock_path, timeout=1).acquire()

    assert not target.exists()
