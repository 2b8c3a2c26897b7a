"""One logical value kept as several keyring entries, none longer than Windows allows.

Windows Credential Manager caps a secret at 2,560 bytes, 1,280 UTF-16 characters (SECURITY #45),
and a refresh plus access token from some providers is far longer. A value named ``N`` is stored as

    N            manifest: {"v": 1, "gen": G, "n": K, "sha256": digest of the whole value}
    N/G/0 … N/G/K-1   the value's chunks, at most CHUNK_CHARS characters each

Crash safety (#49) rests on three rules:

* A write puts its chunks under a *new* generation G+1 and only then replaces the manifest: the
  manifest is the commit point, so a crash leaves either the old value or the new one, never a mix.
  A reader checks the chunk count and digest; anything else is :class:`CorruptEntry`.
* Chunks are created in ascending and removed in descending order, so whatever an interrupted
  write or cleanup leaves of a generation is always a prefix ``0..k-1`` that a probe from 0 finds.
* After committing G+1 a write purges G-1 and G (old data and an interrupted earlier cleanup) and
  the tail of G+1 beyond its K chunks (an interrupted earlier write of the same generation).
  ``remove`` purges G-1, G+1 and G and deletes the manifest last, so an interrupted remove still
  reads as corrupt (signed out) and the next remove finishes the job (#51).

This module does no threading and maps no errors: the keyring store wraps it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Protocol

from broker.store.codec import CorruptEntry, dumps

logger = logging.getLogger(__name__)

MAX_ENTRY_CHARS = 1280
CHUNK_CHARS = 1200  # a little under MAX_ENTRY_CHARS, for backends that add framing


class KeyringLike(Protocol):
    """The three calls of ``keyring.backend.KeyringBackend`` that the store uses."""

    def get_password(self, service: str, username: str) -> str | None: ...

    def set_password(self, service: str, username: str, password: str) -> None: ...

    def delete_password(self, service: str, username: str) -> None: ...


@dataclass(frozen=True)
class Manifest:
    gen: int
    count: int
    sha256: str

    def dumps(self) -> str:
        return dumps({"v": 1, "gen": self.gen, "n": self.count, "sha256": self.sha256})

    @classmethod
    def loads(cls, text: str) -> Manifest:
        try:
            doc = json.loads(text)
            gen, count, digest = doc["gen"], doc["n"], doc["sha256"]
        except (ValueError, TypeError, KeyError, RecursionError):
            raise CorruptEntry("unreadable manifest") from None
        if doc.get("v") != 1 or not _is_count(gen, 1) or not _is_count(count, 1):
            raise CorruptEntry("unreadable manifest")
        if not isinstance(digest, str):
            raise CorruptEntry("unreadable manifest")
        return cls(gen, count, digest)


@dataclass(frozen=True)
class Staged:
    """Chunks written under a new generation, not yet visible to readers."""

    name: str
    manifest: Manifest
    previous: Manifest | None


def split(value: str, size: int = CHUNK_CHARS) -> list[str]:
    return [value[i : i + size] for i in range(0, len(value), size)] or [""]


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class ChunkedEntries:
    """Values of any length in a keyring, under ``service``, with crash-safe replacement."""

    def __init__(self, backend: KeyringLike, service: str, chunk_chars: int = CHUNK_CHARS) -> None:
        self.backend = backend
        self.service = service
        self.chunk_chars = chunk_chars

    def read(self, name: str) -> str | None:
        """The value, None when absent; :class:`CorruptEntry` when half-written or tampered."""
        text = self.backend.get_password(self.service, name)
        if text is None:
            return None
        manifest = Manifest.loads(text)
        parts = []
        for index in range(manifest.count):
            part = self.backend.get_password(self.service, _chunk(name, manifest.gen, index))
            if part is None:
                raise CorruptEntry(f"chunk {index + 1} of {manifest.count} is missing")
            parts.append(part)
        value = "".join(parts)
        if digest(value) != manifest.sha256:
            raise CorruptEntry("chunks do not match the manifest digest")
        return value

    def stage(self, name: str, value: str) -> Staged:
        """Write the chunks of a new generation. Readers still see the previous value."""
        try:
            previous = self._manifest(name)
        except CorruptEntry:
            logger.warning("Replacing an entry whose manifest is unreadable")
            previous = None
        chunks = split(value, self.chunk_chars)
        manifest = Manifest((previous.gen if previous else 0) + 1, len(chunks), digest(value))
        for index, part in enumerate(chunks):
            self.backend.set_password(self.service, _chunk(name, manifest.gen, index), part)
        return Staged(name, manifest, previous)

    def commit(self, staged: Staged) -> None:
        """Publish staged chunks (one manifest write), then purge what they replace."""
        self.backend.set_password(self.service, staged.name, staged.manifest.dumps())
        gen, previous = staged.manifest.gen, staged.previous
        # The previous generation was complete when it was committed: no need to probe its chunks.
        known = previous.count if previous and previous.gen == gen - 1 else 0
        ranges = [(gen - 2, 0, 0), (gen - 1, 0, known), (gen, staged.manifest.count, 0)]
        self._cleanup(staged.name, ranges)

    def write(self, name: str, value: str) -> None:
        self.commit(self.stage(name, value))

    def remove(self, name: str) -> None:
        """Delete every entry of ``name``: chunks first, the manifest last."""
        try:
            manifest = self._manifest(name)
        except CorruptEntry:
            logger.warning("Manifest of a stored entry is unreadable; its chunks cannot be found")
            manifest = None
        gen = manifest.gen if manifest else 0
        for g in (gen - 1, gen + 1, gen):
            self._purge(name, g, 0)
        self._delete(name)

    def _manifest(self, name: str) -> Manifest | None:
        text = self.backend.get_password(self.service, name)
        return None if text is None else Manifest.loads(text)

    def _cleanup(self, name: str, ranges: list[tuple[int, int, int]]) -> None:
        # The new value is committed: leftovers are harmless and the next write or remove
        # purges them, so a failing cleanup must not turn a successful write into an error.
        try:
            for gen, start, known in ranges:
                self._purge(name, gen, start, known)
        except Exception as exc:
            logger.warning("Could not remove old keyring entries (%s); will retry later", type(exc))

    def _purge(self, name: str, gen: int, start: int, known: int = 0) -> None:
        """Delete chunks ``start..`` of a generation: probe upward (from ``known``, the count
        known to exist), delete downward."""
        if gen < 1:
            return
        end = max(start, known)
        while self.backend.get_password(self.service, _chunk(name, gen, end)) is not None:
            end += 1
        for index in reversed(range(start, end)):
            self._delete(_chunk(name, gen, index))

    def _delete(self, username: str) -> None:
        from keyring.errors import PasswordDeleteError  # deletes go through keyring: it is loaded

        with contextlib.suppress(PasswordDeleteError):  # already gone
            self.backend.delete_password(self.service, username)


def _chunk(name: str, gen: int, index: int) -> str:
    return f"{name}/{gen}/{index}"


def _is_count(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
