"""Text from elsewhere made safe to show: the one sanitiser for terminals, tray and notifications.

What a server says (tool text, error descriptions, user names) and what a user typed (URLs) may
carry terminal escape sequences: CSI (``ESC [``) can clear the screen or move the cursor, OSC
(``ESC ]``) can set the window title or write the clipboard (OSC 52), BEL rings, C1 controls
(U+0080-U+009F) act as their ESC forms on some terminals, and bidi overrides reorder what is
read. Every control, format and separator character therefore becomes a plain space before the
text reaches a terminal, a tray label or a notification; what is left of a sequence is inert
printable text. Output meant for programs (``--json``) is JSON, which escapes them instead.
"""

from __future__ import annotations

import unicodedata

__all__ = ["has_control_characters", "html_text", "safe_lines", "safe_text"]


def _shown(ch: str) -> str:
    """A letter, mark, number, punctuation or symbol, or the plain space, as it is (Python's
    "printable"); a control or separator character as a space; an invisible format character
    (zero-width space, bidi override) not at all."""
    if ch.isprintable():
        return ch
    return " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Zs") else ""


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds anything :func:`safe_text` would replace (URLs must not)."""
    return not text.isprintable()


def safe_text(text: str, limit: int | None = None) -> str:
    """One line of printable text, runs of spaces collapsed, at most ``limit`` characters."""
    kept = text if text.isprintable() else "".join(_shown(ch) for ch in text)
    kept = " ".join(kept.split())
    if limit is None or len(kept) <= limit:
        return kept
    return kept[: limit - 1] + "…"


def safe_lines(text: str) -> str:
    """Printable text that keeps its line breaks and tabs (a tool's output, several lines)."""
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(
        "\t".join("".join(_shown(ch) for ch in cell) for cell in line.split("\t")).rstrip()
        for line in lines
    )


def html_text(text: str, limit: int | None = None) -> str:
    """:func:`safe_text`, then escaped for an HTML page (the sign-in callback's answer)."""
    import html  # the callback page only: not loaded by every command

    return html.escape(safe_text(text, limit), quote=True)
