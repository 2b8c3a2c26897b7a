"""Configuring a server from the outputs of the Cognito stack in ``installer/``.

``mcp-broker add URL --from-cloudformation OUTPUTS.json`` accepts any of:

- ``aws cloudformation describe-stacks --stack-name NAME > OUTPUTS.json``
  (``{"Stacks": [{"Outputs": [{"OutputKey": …, "OutputValue": …}]}]}``), or just its
  ``Stacks[0].Outputs`` list;
- a flat ``{"Issuer": "…", "ClientId": "…", …}`` map;
- ``terraform output -json > OUTPUTS.json`` (``{"issuer": {"value": "…"}, …}``).

Names are compared without case and underscores, so Terraform's ``client_id`` is CloudFormation's
``ClientId``. Used: ``Issuer``, ``ClientId``, ``ResourceServerIdentifier`` (must be the server
being added) and ``CallbackPorts``. The result is a ``cognito`` server with its issuer pinned.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from broker.config import ServerConfig
from broker.errors import ConfigError
from broker.oauth.providers import FIXED_CALLBACK_PORTS
from broker.oauth.resource import canonical_resource

REQUIRED = ("Issuer", "ClientId", "ResourceServerIdentifier")


def normalized(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def read_stack_outputs(path: str | Path) -> dict[str, str]:
    """The outputs in ``path`` as ``{normalized name: value}``. Raises :class:`ConfigError`."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except RecursionError:
        raise ConfigError(f"{path}: cannot read stack outputs (nested too deeply)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read stack outputs ({exc})") from None
    outputs = outputs_of(doc)
    if outputs is None:
        raise ConfigError(
            f"{path}: not CloudFormation or Terraform outputs (expected `aws cloudformation "
            "describe-stacks`, `terraform output -json` or a flat name→value object)"
        )
    return {normalized(k): v for k, v in outputs.items()}


def outputs_of(doc: Any) -> dict[str, str] | None:
    """Recognise the three shapes; None when ``doc`` is none of them."""
    if isinstance(doc, dict) and isinstance(doc.get("Stacks"), list):
        stacks = [s for s in doc["Stacks"] if isinstance(s, dict) and s.get("Outputs")]
        if len(stacks) != 1:
            return None  # none, or several stacks: ambiguous
        doc = stacks[0]["Outputs"]
    if isinstance(doc, list):
        pairs = [(o.get("OutputKey"), o.get("OutputValue")) for o in doc if isinstance(o, dict)]
        return _strings(dict(pairs)) if len(pairs) == len(doc) else None
    if (
        isinstance(doc, dict)
        and doc
        and all(isinstance(v, dict) and "value" in v for v in doc.values())
    ):
        return _strings({k: v["value"] for k, v in doc.items()})
    return _strings(doc) if isinstance(doc, dict) else None


def _strings(values: dict[Any, Any]) -> dict[str, str] | None:
    if all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
        return values
    return None


def server_config_from_outputs(path: str | Path, url: str | None = None) -> ServerConfig:
    """A :class:`ServerConfig` for the stack's MCP server (``url`` defaults to it; when given
    it must be the stack's resource server identifier)."""
    outputs = read_stack_outputs(path)
    missing = [name for name in REQUIRED if normalized(name) not in outputs]
    if missing:
        raise ConfigError(f"{path}: the outputs lack {', '.join(missing)}")
    resource = canonical_resource(outputs["resourceserveridentifier"])
    if url is not None and canonical_resource(url) != resource:
        raise ConfigError(
            f"{path}: these outputs are for {resource}, not {canonical_resource(url)}"
        )
    return ServerConfig(
        url=resource,
        client_id=outputs["clientid"],
        provider="cognito",
        callback_ports=_ports(path, outputs.get("callbackports")),
        issuer=outputs["issuer"],
    )


def _ports(path: str | Path, text: str | None) -> tuple[int, ...]:
    if not text:
        return FIXED_CALLBACK_PORTS
    try:
        ports = tuple(int(p) for p in text.replace(" ", ",").split(",") if p)
    except ValueError:
        raise ConfigError(f"{path}: CallbackPorts is not a list of ports: {text!r}") from None
    if not ports or not all(0 < p < 65536 for p in ports):
        raise ConfigError(f"{path}: CallbackPorts is not a list of ports: {text!r}")
    return ports


def add_from_cloudformation_argument(parser: argparse.ArgumentParser) -> None:
    """``--from-cloudformation OUTPUTS.json`` for ``mcp-broker add`` (see the module doc)."""
    parser.add_argument(
        "--from-cloudformation",
        metavar="OUTPUTS.json",
        help="take the client id, issuer and callback ports from the Cognito stack's outputs "
        "(`aws cloudformation describe-stacks` or `terraform output -json`); "
        "sets --provider cognito",
    )
