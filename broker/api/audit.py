"""The audit log of the local token API: which client asked for which server, and what it got.

``<state dir>/audit.log`` (:attr:`broker.paths.BrokerPaths.audit_log`): JSON lines, 0600, with
time, client, resource and outcome, never a token. Repeats of one (client, resource, outcome) are
folded into one line per minute with a ``count``, so a busy client does not grow the file per
request. Past 1 MiB the file is rotated to ``audit.log.1``. ``mcp-broker clients log`` reads it.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from broker.paths import open_private

logger = logging.getLogger(__name__)


class AuditLog:
    """JSON lines of which client asked for which server, and what it got. Never a token.

    The same (client, resource, outcome) is written at most once per ``fold_seconds``; the next
    line for it carries ``count``, the number of events it stands for.
    """

    MAX_BYTES = 1024 * 1024

    def __init__(self, path: Path, fold_seconds: float = 60.0) -> None:
        self.path = path
        self.fold_seconds = fold_seconds
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, str, str], _Slot] = {}

    def record(self, client: str, resource: str, outcome: str) -> None:
        key = (client, resource[:2048], outcome)
        now = time.monotonic()
        # A repeat takes no lock: a contended lock on every token request costs tail latency.
        if self._fold(key, now):
            return
        with self._lock:
            if self._fold(key, now):
                return
            old = self._slots.get(key)
            self._slots[key] = _Slot(now)
            self._write(key, 1 + (old.taken() if old else 0))

    def flush(self) -> None:
        """Write the folded counts not yet written (at shutdown)."""
        with self._lock:
            for key, slot in list(self._slots.items()):
                folded = slot.taken()
                if folded:
                    self._write(key, folded)
            self._slots.clear()

    def _fold(self, key: tuple[str, str, str], now: float) -> bool:
        slot = self._slots.get(key)
        if slot is None or now - slot.written_at >= self.fold_seconds:
            return False
        next(slot.hits)  # atomic in CPython
        return True

    def _write(self, key: tuple[str, str, str], count: int) -> None:
        client, resource, outcome = key
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "client": client,
            "resource": resource,
            "outcome": outcome,
            "count": count,
        }
        try:
            self._rotate_if_big()
            fd = open_private(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            with os.fdopen(fd, "a", encoding="utf-8") as out:
                out.write(json.dumps(line, ensure_ascii=True) + "\n")
        except OSError as exc:
            logger.warning("could not write the audit log %s: %s", self.path, exc)

    def _rotate_if_big(self) -> None:
        try:
            if self.path.stat().st_size > self.MAX_BYTES:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except FileNotFoundError:
            pass


class _Slot:
    """When a (client, resource, outcome) line was last written, and the repeats since."""

    def __init__(self, written_at: float) -> None:
        self.written_at = written_at
        self.hits = itertools.count()

    def taken(self) -> int:
        """The number of repeats counted (call once: it counts itself, then subtracts)."""
        return next(self.hits)


def read_audit_log(path: Path) -> Iterator[dict[str, Any]]:
    """The audit log's entries, oldest first (the rotated file, then the current one)."""
    for candidate in (path.with_name(path.name + ".1"), path):
        try:
            lines = candidate.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(entry, dict):
                yield entry
