"""Parse ``WWW-Authenticate`` Bearer challenges (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9728 §5.1).

Only the ``Bearer`` challenge is kept (else a ``DPoP`` one, RFC 9449 §7.1); its
``resource_metadata``, ``scope``, ``error`` and ``error_description`` parameters drive discovery
and step-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # noqa: S105 - the RFC 9110 "token" grammar
_QUOTED = r'"(?:[^"\\]|\\.)*"'
# Unquoted values are read leniently (servers send ``scope=mcp:basic``, which RFC 9110 forbids).
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*({_QUOTED}|[^\s,"]+)\s*(?:,|$)')
_TOKEN68 = re.compile(r"\s*[A-Za-z0-9\-._~+/]+=*\s*(?:,|$)")
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|(?=,)|$)")


@dataclass(frozen=True)
class BearerChallenge:
    params: dict[str, str] = field(default_factory=dict)

    @property
    def resource_metadata(self) -> str | None:
        return self.params.get("resource_metadata")

    @property
    def scope(self) -> str | None:
        scope = self.params.get("scope")
        return " ".join(scope.split()) if scope and scope.strip() else None

    @property
    def error(self) -> str | None:
        return self.params.get("error")

    @property
    def error_description(self) -> str | None:
        return self.params.get("error_description")

    @property
    def insufficient_scope(self) -> bool:
        return self.error == "insufficient_scope"


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """All challenges in one header value, as ``(scheme lowercased, params)``."""
    challenges: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while pos < len(header):
        if header[pos] in ", \t":
            pos += 1
            continue
        scheme = _SCHEME.match(header, pos)
        if scheme is None:
            break
        params: dict[str, str] = {}
        pos = scheme.end()
        if (token68 := _TOKEN68.match(header, pos)) is not None:
            pos = token68.end()  # e.g. "Negotiate abc==": no parameters
        while (param := _PARAM.match(header, pos)) is not None:
            name = param.group(1).lower()
            params.setdefault(name, _unquote(param.group(2)))
            pos = param.end()
        challenges.append((scheme.group(1).lower(), params))
    return challenges


def parse_bearer_challenge(headers: list[str] | str | None) -> BearerChallenge | None:
    """The Bearer challenge among ``WWW-Authenticate`` values, else the ``DPoP`` one (RFC 9449
    §7.1: the same ``error``, ``scope`` and RFC 9728 ``resource_metadata`` parameters, from a
    server that takes DPoP-bound tokens only), or None if there is neither."""
    if headers is None:
        return None
    found: dict[str, dict[str, str]] = {}
    for value in [headers] if isinstance(headers, str) else headers:
        for scheme, params in parse_challenges(value):
            found.setdefault(scheme, params)
    for scheme in ("bearer", "dpop"):
        if scheme in found:
            return BearerChallenge(found[scheme])
    return None
