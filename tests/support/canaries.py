"""Where a leaked secret could end up on the user's machine (the canary run): every file under
the broker's home, recursively (state, logs, locks, config), and what a process wrote to its
terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def files_under(root: Path) -> dict[str, str]:
    """Every regular file below ``root``, by relative path, read as text (bytes that are not
    UTF-8 are replaced, so a binary file is still searched for ASCII canaries)."""
    return {
        str(path.relative_to(root)): path.read_text(errors="replace")
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def leaks(canaries: Sequence[str], places: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(place, canary)`` for each canary found in a place; empty when nothing leaked.

    The canary's value is never part of the answer, only its position in ``canaries``, so a
    failing assertion does not print the secret it caught.
    """
    return [
        (place, f"canary #{index}")
        for index, canary in enumerate(canaries)
        for place, text in places.items()
        if canary in text
    ]
