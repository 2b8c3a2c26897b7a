"""``mcp-demo-server serve --from-cloudformation OUTPUTS.json``: trust the Cognito stack.

Reads the outputs of ``installer/cloudformation/mcp-broker-cognito.yaml`` (or its Terraform twin)
in any of the shapes ``mcp-broker add --from-cloudformation`` accepts: ``aws cloudformation
describe-stacks`` JSON, its ``Outputs`` list, a flat name→value map, or ``terraform output
-json``. Names compare without case and underscores (``client_id`` is ``ClientId``).

It sets ``--issuer`` (Issuer), ``--client-id`` (ClientId), ``--resource``
(ResourceServerIdentifier), ``--jwks-url`` (JwksUri, when present) and ``--profile cognito``, at
its place on the command line: options after it override it.

(The broker has its own reader, :mod:`broker.integrations.cloudformation`: ``demo_server`` and
``broker`` do not import each other. ``tests/demo_server/test_resource_cloudformation.py`` holds
both to the same inputs.)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REQUIRED = ("Issuer", "ClientId", "ResourceServerIdentifier")


def _key(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def read_outputs(path: str | Path) -> dict[str, str]:
    """``{normalized name: value}``; raises ValueError with a message for the user."""
    try:
        doc: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read stack outputs ({exc})") from None
    if isinstance(doc, dict) and isinstance(doc.get("Stacks"), list):
        stacks = [s for s in doc["Stacks"] if isinstance(s, dict) and s.get("Outputs")]
        doc = stacks[0]["Outputs"] if len(stacks) == 1 else None
    if isinstance(doc, list) and all(isinstance(o, dict) for o in doc):
        doc = {o.get("OutputKey"): o.get("OutputValue") for o in doc}
    elif (
        isinstance(doc, dict)
        and doc
        and all(isinstance(v, dict) and "value" in v for v in doc.values())
    ):
        doc = {k: v["value"] for k, v in doc.items()}
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
    ):
        raise ValueError(f"{path}: not CloudFormation or Terraform stack outputs")
    outputs = {_key(k): v for k, v in doc.items()}
    missing = [name for name in REQUIRED if _key(name) not in outputs]
    if missing:
        raise ValueError(f"{path}: the outputs lack {', '.join(missing)}")
    return outputs


class FromCloudFormation(argparse.Action):
    """Sets the trust options from the outputs when the option is parsed."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        try:
            outputs = read_outputs(str(values))
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        namespace.issuer = outputs["issuer"]
        namespace.client_ids = [outputs["clientid"]]
        namespace.resource = outputs["resourceserveridentifier"]
        namespace.jwks_url = outputs.get("jwksuri", namespace.jwks_url)
        namespace.profile = "cognito"
        setattr(namespace, self.dest, values)


def add_from_cloudformation_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from-cloudformation",
        action=FromCloudFormation,
        metavar="OUTPUTS.json",
        help="set --issuer, --client-id, --resource and --jwks-url from the Cognito stack's "
        "outputs (aws cloudformation describe-stacks or terraform output -json); options "
        "after it override it",
    )
