"""Editing a JSON-with-comments file (VS Code, Zed, Gemini CLI, opencode) line by line, so that
its comments survive: the :class:`~broker.integrations.textconfig.LineSyntax` of such files.

The servers object (``"context_servers": {…}`` and the like) is found among the top-level
members by scanning the text as JSON does, strings and comments skipped. Each of its members
must start on a line of its own and end on a line of its own, as every formatted settings file
has them; the broker's member is added before the closing brace, replaced or deleted as whole
lines, and the commas between members are put right. The result is read back (comments and
trailing commas removed) and must give the intended data, or nothing is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.errors import ClientConfigError
from broker.integrations.jsonconfig import loads_strict, strip_jsonc
from broker.integrations.textconfig import CannotEdit, Servers

_WS = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)*", re.DOTALL)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


@dataclass(frozen=True)
class Member:
    key: str
    start: int  # offset of the key's opening quote
    value_start: int
    end: int  # offset just past the value


@dataclass(frozen=True)
class JsoncMembers:
    """Servers as members of a top-level object of a JSON-with-comments file."""

    key: str

    def parse(self, text: str) -> dict[str, Any]:
        try:
            data = loads_strict(strip_jsonc(text)) if text.strip() else {}
        except (ValueError, RecursionError) as exc:
            raise ClientConfigError(f"is not valid JSON with comments ({exc})") from None
        if not isinstance(data, dict):
            raise ClientConfigError("the top level is not a JSON object")
        return data

    def servers(self, data: Mapping[str, Any]) -> Servers:
        servers = data.get(self.key, {})
        if not isinstance(servers, dict):
            raise ClientConfigError(f"{self.key!r} is not a JSON object")
        return servers

    def with_servers(self, data: Mapping[str, Any], servers: Servers) -> dict[str, Any]:
        result = dict(data)
        result[self.key] = servers
        return result

    def span(self, lines: list[str], name: str, data: Mapping[str, Any]) -> tuple[int, int] | None:
        container = self._container("".join(lines))
        if container is None:
            return None
        members, _ = container
        member = next((m for m in members if m.key == name), None)
        return None if member is None else _line_span(lines, member)

    def render(self, name: str, entry: Mapping[str, Any], lines: list[str]) -> list[str]:
        text = "".join(lines)
        container = self._container(text)
        if container is not None and container[0]:
            prefix = _leading(lines, _line_of(lines, container[0][0].start))
        else:
            prefix = _root_prefix(lines, text) * 2
        unit = _unit(lines, text)
        body = json.dumps(dict(entry), indent=unit, ensure_ascii=False).splitlines()
        first = f"{prefix}{json.dumps(name, ensure_ascii=False)}: {body[0]}"
        return [first, *(prefix + line for line in body[1:])]

    def insert(self, lines: list[str], block: list[str], newline: str) -> list[str]:
        text = "".join(lines) or "{}"
        lines = text.splitlines(keepends=True)
        if not lines[-1].endswith("\n"):
            lines[-1] += newline
        container = self._container(text)
        body = [line + newline for line in block]
        if container is None:  # a new top-level member, before the root's closing brace
            root_open, root_close = _root(text)
            prefix = _root_prefix(lines, text)
            body = [f"{prefix}{json.dumps(self.key)}: {{{newline}", *body, f"{prefix}}}{newline}"]
            return _insert_before(lines, root_open, root_close, body)
        _, (opening, closing) = container
        return _insert_before(lines, opening, closing, body)

    def tidy(self, lines: list[str], newline: str, before: list[str]) -> list[str]:
        """Commas between members, and after the last one where the file had one there."""
        text = "".join(lines)
        root_open, _ = _root(text)
        root_members, _ = _members(text, root_open)
        text = _commas_between(text, root_members)
        container = self._container(text)
        if container is None or not container[0]:
            return text.splitlines(keepends=True)
        members = container[0]
        text = _commas_between(text, members)
        members = self._container(text)[0]  # type: ignore[index]
        last = members[-1]
        trailing = _comma_after(text, last.end)
        old = self._container("".join(before))
        keep = old is not None and old[0] and _comma_after("".join(before), old[0][-1].end)
        if trailing is not None and not keep:
            text = text[:trailing] + text[trailing + 1 :]
        elif trailing is None and keep:  # the file's style: a comma after every member
            text = text[: last.end] + "," + text[last.end :]
        return text.splitlines(keepends=True)

    def snippet(self, servers: Servers) -> str:
        return json.dumps({self.key: servers}, indent=2, ensure_ascii=False) + "\n"

    def _container(self, text: str) -> tuple[list[Member], tuple[int, int]] | None:
        """The servers object's members and its braces' offsets, or None when it is absent."""
        if not text.strip():
            return None
        root_open, _ = _root(text)
        members, _ = _members(text, root_open)
        found = next((m for m in members if m.key == self.key), None)
        if found is None:
            return None
        if text[found.value_start] != "{":
            raise CannotEdit(f"{self.key!r} is not an object")
        inner, closing = _members(text, found.value_start)
        return inner, (found.value_start, closing)


def _root(text: str) -> tuple[int, int]:
    start = _WS.match(text, 0)
    at = start.end() if start else 0
    if at >= len(text) or text[at] != "{":
        raise CannotEdit("the top level is not an object")
    return at, _members(text, at)[1]


def _members(text: str, opening: int) -> tuple[list[Member], int]:
    """The members of the object whose ``{`` is at ``opening``, and its ``}``'s offset."""
    members: list[Member] = []
    at = opening + 1
    while True:
        at = _skip(text, at)
        if at >= len(text):
            raise CannotEdit("an object is not closed")
        if text[at] == "}":
            return members, at
        if text[at] == ",":
            at += 1
            continue
        match = _STRING.match(text, at)
        if match is None:
            raise CannotEdit("an object member has no quoted name")
        key = json.loads(match.group(0))
        at = _skip(text, match.end())
        if at >= len(text) or text[at] != ":":
            raise CannotEdit("an object member has no value")
        value = _skip(text, at + 1)
        end = _value_end(text, value)
        members.append(Member(key, match.start(), value, end))
        at = end


def _value_end(text: str, at: int) -> int:
    if at < len(text) and text[at] in "{[":
        depth = 0
        while at < len(text):
            char = text[at]
            if char == '"':
                match = _STRING.match(text, at)
                at = match.end() if match else len(text)
                continue
            if text.startswith("//", at) or text.startswith("/*", at):
                at = _skip(text, at)
                continue
            if char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
                if depth == 0:
                    return at + 1
            at += 1
        raise CannotEdit("a value is not closed")
    match = _STRING.match(text, at)
    if match:
        return match.end()
    scalar = re.compile(r"[^,}\]\s/]+").match(text, at)
    if scalar is None:
        raise CannotEdit("a member has no value")
    return scalar.end()


def _skip(text: str, at: int) -> int:
    match = _WS.match(text, at)
    return match.end() if match else at


def _line_of(lines: list[str], offset: int) -> int:
    total = 0
    for index, line in enumerate(lines):
        total += len(line)
        if offset < total:
            return index
    return len(lines) - 1


def _line_span(lines: list[str], member: Member) -> tuple[int, int]:
    """The member's whole lines; it must have them to itself."""
    text = "".join(lines)
    first, last = _line_of(lines, member.start), _line_of(lines, member.end - 1)
    line_start = sum(len(line) for line in lines[:first])
    after = text[member.end : line_start + sum(len(x) for x in lines[first : last + 1])]
    if text[line_start : member.start].strip() or not re.fullmatch(r"\s*,?\s*(//.*)?\s*", after):
        raise CannotEdit(f"the entry {member.key!r} shares its lines with something else")
    return first, last + 1


def _leading(lines: list[str], index: int) -> str:
    line = lines[index]
    return line[: len(line) - len(line.lstrip(" \t"))]


def _root_prefix(lines: list[str], text: str) -> str:
    if not text.strip():
        return "  "
    root_open, _ = _root(text)
    members, _ = _members(text, root_open)
    return _leading(lines, _line_of(lines, members[0].start)) if members else "  "


def _unit(lines: list[str], text: str) -> str | int:
    prefix = _root_prefix(lines, text) if text.strip() else "  "
    return "\t" if prefix.startswith("\t") else max(len(prefix), 1)


def _insert_before(lines: list[str], opening: int, closing: int, body: list[str]) -> list[str]:
    """``body`` as whole lines just before the ``}`` at ``closing``, which gets a line of its
    own when it shares one with the ``{`` (``"key": {}``)."""
    text = "".join(lines)
    index = _line_of(lines, closing)
    line_start = sum(len(line) for line in lines[:index])
    if text[line_start:closing].strip():  # "{}" on one line: split it
        head, tail = text[:closing], text[closing:]
        indent = _leading(lines, _line_of(lines, opening))
        newline = "\r\n" if lines[0].endswith("\r\n") else "\n"
        return (head.rstrip(" \t") + newline + "".join(body) + indent + tail).splitlines(
            keepends=True
        )
    return lines[:index] + body + lines[index:]


def _comma_after(text: str, end: int) -> int | None:
    at = _skip(text, end)
    return at if at < len(text) and text[at] == "," else None


def _commas_between(text: str, members: list[Member]) -> str:
    """A comma after every member but the last, right after its value where one is missing."""
    for member in reversed(members[:-1]):
        if _comma_after(text, member.end) is None:
            text = text[: member.end] + "," + text[member.end :]
    return text
