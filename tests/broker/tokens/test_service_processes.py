"""Single flight across real processes (and one broker per user): several processes find the same
expired token at once; exactly one refreshes, the others adopt what it stored."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker.paths import write_private_file

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PROCESSES = 6


def test_six_processes_with_an_expired_token_refresh_it_once(tmp_path: Path) -> None:
    now = time.time()
    expired = {
        "access_token": "access-0",
        "expires_at": now - 10,
        "refresh_token": "refresh-0",
        "obtained_at": now - 3610,
    }
    write_private_file(tmp_path / "tokens.json", json.dumps(expired))
    (tmp_path / "valid-refresh").write_text("refresh-0")
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.broker.tokens.service_child", str(tmp_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        (tmp_path / "go").touch()
        results = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()

    assert [c.returncode for c in children] == [0] * PROCESSES, [err for _, err in results]
    assert {out.strip() for out, _ in results} == {"access-1"}
    assert len((tmp_path / "refresh-log").read_text().splitlines()) == 1
