"""Editing a TOML or YAML config file line by line, so that its comments and layout survive.

The broker's entries are whole blocks of lines: a ``[mcp_servers.NAME]`` table in TOML (Codex),
one item of a top-level mapping or sequence in YAML (Goose's ``extensions``, Continue's
``mcpServers``). An edit appends such a block at the end of its container, replaces it where it
stands, or deletes its lines; every other line of the file is kept byte for byte.

The edited text is parsed again and must give exactly the intended data: the file as it was,
with only the broker's entries changed. When it does not (a layout this line editor does not
follow, such as a flow-style mapping or an entry spread over the file), nothing is written and
the error says to add the entry by hand (``--print`` shows it in the file's own format).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import yaml  # type: ignore[import-untyped,unused-ignore]

from broker.errors import ClientConfigError

Servers = dict[str, Any]

_COMMENT_OR_BLANK = re.compile(r"^[ \t]*(#.*)?\r?\n?$")
_BARE_TOML_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_TOML_HEADER = re.compile(r"^[ \t]*\[(?P<array>\[)?(?P<key>[^\]]*)\]")


class CannotEdit(ClientConfigError):
    """The file's layout is not one the line editor follows (the file is left unchanged)."""


class LineSyntax(Protocol):
    """What the line editor needs to know of a file format (TOML, YAML, JSON with comments)."""

    @property
    def key(self) -> str: ...

    def parse(self, text: str) -> dict[str, Any]: ...
    def servers(self, data: Mapping[str, Any]) -> Servers: ...
    def with_servers(self, data: Mapping[str, Any], servers: Servers) -> dict[str, Any]: ...
    def span(
        self, lines: list[str], name: str, data: Mapping[str, Any]
    ) -> tuple[int, int] | None: ...
    def render(self, name: str, entry: Mapping[str, Any], lines: list[str]) -> list[str]: ...
    def insert(self, lines: list[str], block: list[str], newline: str) -> list[str]: ...
    def tidy(self, lines: list[str], newline: str, before: list[str]) -> list[str]: ...
    def snippet(self, servers: Servers) -> str: ...


@dataclass(frozen=True)
class TomlTables:
    """Servers as ``[KEY.NAME]`` tables of a TOML file (Codex's ``mcp_servers``)."""

    key: str

    def parse(self, text: str) -> dict[str, Any]:
        return tomllib.loads(text)

    def servers(self, data: Mapping[str, Any]) -> Servers:
        servers = data.get(self.key, {})
        if not isinstance(servers, dict):
            raise ClientConfigError(f"{self.key!r} is not a table")
        return servers

    def with_servers(self, data: Mapping[str, Any], servers: Servers) -> dict[str, Any]:
        result = dict(data)
        result[self.key] = servers
        if not servers and self.key not in data:
            del result[self.key]
        return result

    def span(self, lines: list[str], name: str, data: Mapping[str, Any]) -> tuple[int, int] | None:
        start = None
        for index, line in enumerate(lines):
            parts = _toml_header_parts(line)
            if parts is None:
                continue
            ours = parts[:2] == [self.key, name]
            if start is None and ours and len(parts) == 2:
                start = index
            elif start is not None and not ours:
                return start, _trim_end(lines, start, index)
        return None if start is None else (start, _trim_end(lines, start, len(lines)))

    def render(self, name: str, entry: Mapping[str, Any], lines: list[str]) -> list[str]:
        block = [f"[{_toml_key(self.key)}.{_toml_key(name)}]"]
        block += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in entry.items()]
        return block

    def insert(self, lines: list[str], block: list[str], newline: str) -> list[str]:
        """Append at the end of the file, after a blank line."""
        result = _ended(lines, newline)
        if result and result[-1].strip():
            result.append(newline)
        return result + [line + newline for line in block]

    def tidy(self, lines: list[str], newline: str, before: list[str]) -> list[str]:
        return lines

    def snippet(self, servers: Servers) -> str:
        blocks = ["\n".join(self.render(n, e, [])) for n, e in servers.items()]
        return "\n\n".join(blocks) + "\n"


@dataclass(frozen=True)
class YamlBlock:
    """Servers in a top-level block of a YAML file: a mapping of NAME to entry (Goose's
    ``extensions``) or, with ``listed``, a sequence of entries that carry a ``name`` (Continue's
    ``mcpServers``)."""

    key: str
    listed: bool = False

    def parse(self, text: str) -> dict[str, Any]:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ClientConfigError(f"is not valid YAML ({_first_line(exc)})") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ClientConfigError("the top level is not a YAML mapping")
        return data

    def servers(self, data: Mapping[str, Any]) -> Servers:
        value = data.get(self.key)
        if value is None:
            return {}
        if not self.listed:
            if not isinstance(value, dict):
                raise ClientConfigError(f"{self.key!r} is not a mapping")
            return dict(value)
        if not isinstance(value, list) or not all(
            isinstance(item, dict) and isinstance(item.get("name"), str) for item in value
        ):
            raise ClientConfigError(f"{self.key!r} is not a list of entries with a name")
        names = [item["name"] for item in value]
        if len(set(names)) != len(names):
            raise ClientConfigError(f"{self.key!r} has two entries with the same name")
        return {item["name"]: {k: v for k, v in item.items() if k != "name"} for item in value}

    def with_servers(self, data: Mapping[str, Any], servers: Servers) -> dict[str, Any]:
        result = dict(data)
        if self.listed:
            result[self.key] = [{"name": n, **e} for n, e in servers.items()]
        else:
            result[self.key] = dict(servers)
        if not servers and self.key not in data:
            del result[self.key]
        return result

    def span(self, lines: list[str], name: str, data: Mapping[str, Any]) -> tuple[int, int] | None:
        found = self._block(lines)
        if found is None:
            return None
        first, end, indent = found
        if self.listed:
            names = list(self.servers(data))
            starts = [i for i in range(first, end) if _is_item(lines[i], indent)]
            if len(starts) != len(names) or name not in names:
                return None
            index = names.index(name)
            start = starts[index]
            stop = starts[index + 1] if index + 1 < len(starts) else end
            return start, _trim_end(lines, start, stop)
        keys = {name, json.dumps(name), f"'{name}'"}
        for i in range(first, end):
            line = lines[i]
            if _indent(line) == indent and line.strip().split(":")[0].strip() in keys:
                stop = next(
                    (
                        j
                        for j in range(i + 1, end)
                        if _is_content(lines[j]) and _indent(lines[j]) <= indent
                    ),
                    end,
                )
                return i, _trim_end(lines, i, stop)
        return None

    def render(self, name: str, entry: Mapping[str, Any], lines: list[str]) -> list[str]:
        found = self._block(lines)
        indent = found[2] if found is not None and found[2] is not None else 2
        value: Any = [{"name": name, **entry}] if self.listed else {name: dict(entry)}
        text = yaml.safe_dump(
            value, sort_keys=False, default_flow_style=False, allow_unicode=True, width=2**31 - 1
        )
        return [" " * indent + line for line in text.splitlines()]

    def insert(self, lines: list[str], block: list[str], newline: str) -> list[str]:
        """At the end of the container's block; the container is added when it is missing."""
        result = _ended(lines, newline)
        container = self._container(result)
        if container is None:
            return result + [f"{self.key}:{newline}"] + [line + newline for line in block]
        index, rest = container
        if rest in ("{}", "[]", "null", "~"):
            result[index] = f"{self.key}:{newline}"
        elif rest:
            raise CannotEdit(f"{self.key!r} is written in flow style")
        found = self._block(result)
        assert found is not None
        first, end, _ = found
        at = _trim_end(result, first, end)
        return result[:at] + [line + newline for line in block] + result[at:]

    def tidy(self, lines: list[str], newline: str, before: list[str]) -> list[str]:
        """An emptied block says so (``{}``/``[]``): clients refuse a null list or mapping."""
        container = self._container(lines)
        found = self._block(lines)
        if container is None or found is None or container[1]:
            return lines
        first, end, _ = found
        if any(_is_content(lines[i]) for i in range(first, end)):
            return lines
        result = list(lines)
        result[container[0]] = f"{self.key}: {'[]' if self.listed else '{}'}{newline}"
        return result

    def snippet(self, servers: Servers) -> str:
        lines: list[str] = []
        for name, entry in servers.items():
            lines += self.render(name, entry, [])
        return f"{self.key}:\n" + "\n".join(lines) + "\n"

    def _container(self, lines: list[str]) -> tuple[int, str] | None:
        key = re.escape(self.key)
        pattern = re.compile(rf"^(?:{key}|\"{key}\"|'{key}')[ \t]*:(?P<rest>.*)$")
        for index, line in enumerate(lines):
            match = pattern.match(line.rstrip("\r\n"))
            if match:
                return index, re.sub(r"(^|\s)#.*$", "", match.group("rest")).strip()
        return None

    def _block(self, lines: list[str]) -> tuple[int, int, int | None] | None:
        """The container's block: first line, end (exclusive) and the indent of its items."""
        container = self._container(lines)
        if container is None:
            return None
        first = container[0] + 1
        end = first
        while end < len(lines):
            line = lines[end]
            if _is_content(line) and _indent(line) == 0 and not (self.listed and _is_item(line, 0)):
                break
            end += 1
        content = [lines[i] for i in range(first, end) if _is_content(lines[i])]
        return first, end, _indent(content[0]) if content else None


def edit(syntax: LineSyntax, text: str, old: Servers, new: Servers) -> str:
    """``text`` with the servers changed from ``old`` to ``new`` (only the names whose entry
    differs are touched), checked by parsing it again."""
    try:
        return _edit(syntax, text, old, new)
    except CannotEdit:
        raise
    except (ClientConfigError, ValueError):  # an edit step left text that does not parse
        raise CannotEdit("the edited file would not read back as intended") from None


def _edit(syntax: LineSyntax, text: str, old: Servers, new: Servers) -> str:
    data = syntax.parse(text)
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    for name in old:
        if name in new and new[name] == old[name]:
            continue
        span = syntax.span(lines, name, data)
        if span is None:
            raise CannotEdit(f"the entry {name!r} is not laid out as one block")
        start, stop = span
        block: list[str] = []
        if name in new:
            block = [line + newline for line in syntax.render(name, new[name], lines)]
        elif start > 0 and _is_blank(lines[start - 1]) and _blank_or_end(lines, stop):
            start -= 1  # the blank line that set the block apart goes with it
        lines = lines[:start] + block + lines[stop:]
        data = syntax.parse("".join(lines))
    for name, entry in new.items():
        if name not in old:
            lines = syntax.insert(lines, syntax.render(name, entry, lines), newline)
    lines = syntax.tidy(lines, newline, text.splitlines(keepends=True))
    result = "".join(lines)
    expected = syntax.with_servers(syntax.parse(text), new)
    if not _same(syntax, syntax.parse(result), expected):
        raise CannotEdit("the edited file would not read back as intended")
    return result


def _same(syntax: LineSyntax, got: dict[str, Any], expected: dict[str, Any]) -> bool:
    rest = {k: v for k, v in got.items() if k != syntax.key}
    wanted = {k: v for k, v in expected.items() if k != syntax.key}
    return rest == wanted and syntax.servers(got) == syntax.servers(expected)


def _toml_header_parts(line: str) -> list[str] | None:
    match = _TOML_HEADER.match(line)
    if match is None:
        return None
    if match.group("array"):
        return ["[["]
    try:
        table = tomllib.loads(f"[{match.group('key')}]")
    except tomllib.TOMLDecodeError:
        return None
    parts: list[str] = []
    while isinstance(table, dict) and len(table) == 1:
        ((key, table),) = table.items()
        parts.append(key)
    return parts


def _toml_key(key: str) -> str:
    return key if _BARE_TOML_KEY.match(key) else _toml_string(key)


def _toml_string(value: str) -> str:
    # A JSON string is a TOML basic string, except that TOML also forbids a raw DEL.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return (
            "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _trim_end(lines: list[str], start: int, stop: int) -> int:
    """``stop`` moved back over blank and comment lines (they belong to what follows)."""
    while stop > start + 1 and _COMMENT_OR_BLANK.match(lines[stop - 1]):
        stop -= 1
    return stop


def _ended(lines: list[str], newline: str) -> list[str]:
    result = list(lines)
    if result and not result[-1].endswith("\n"):
        result[-1] += newline
    return result


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _blank_or_end(lines: list[str], index: int) -> bool:
    return index >= len(lines) or _is_blank(lines[index])


def _is_blank(line: str) -> bool:
    return not line.strip()


def _is_content(line: str) -> bool:
    return _COMMENT_OR_BLANK.match(line) is None


def _is_item(line: str, indent: int | None) -> bool:
    stripped = line[indent or 0 :] if indent is not None else line
    return _indent(line) == (indent or 0) and (
        stripped.startswith("- ") or stripped.rstrip() == "-"
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
