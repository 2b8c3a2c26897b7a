"""``mcp-demo-server serve --from-cloudformation OUTPUTS.json``, and the broker's reader of the
same outputs (``mcp-broker add --from-cloudformation``): both accept the same files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from broker.errors import ConfigError
from broker.integrations.cloudformation import read_stack_outputs, server_config_from_outputs
from demo_server.cli import build_parser
from demo_server.resource import settings_from_args
from demo_server.resource.stack_outputs import read_outputs
from tests.support.jwt_issuer import JwksServer
from tests.support.procs import ServerProcess, demo_server_cmd
from tests.support.resource_server import call_tool, initialize_body, post_mcp

URL = "https://mcp.example.com/mcp"
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
FLAT = {
    "Issuer": ISSUER,
    "UserPoolId": "eu-west-1_AbC123",
    "Region": "eu-west-1",
    "ClientId": "4v8abc",
    "ResourceServerIdentifier": URL,
    "JwksUri": f"{ISSUER}/.well-known/jwks.json",
    "CallbackPorts": "53682,53683,53684",
}


def shapes(flat: dict[str, str]) -> dict[str, Any]:
    """The same outputs as each tool prints them."""
    outputs_list = [{"OutputKey": k, "OutputValue": v, "Description": "d"} for k, v in flat.items()]
    snake = {
        "".join("_" + c.lower() if c.isupper() else c for c in k).lstrip("_"): v
        for k, v in flat.items()
    }
    return {
        "describe-stacks": {"Stacks": [{"StackName": "s", "Outputs": outputs_list}]},
        "outputs-list": outputs_list,
        "flat": flat,
        "terraform": {
            k: {"sensitive": False, "type": "string", "value": v} for k, v in snake.items()
        },
    }


SHAPES = shapes(FLAT)


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_both_readers_read_every_shape_alike(tmp_path: Path, shape: str) -> None:
    path = write(tmp_path, SHAPES[shape])
    assert read_stack_outputs(path) == read_outputs(path)
    server = server_config_from_outputs(path)
    assert (server.url, server.client_id, server.issuer) == (URL, "4v8abc", ISSUER)
    assert server.provider == "cognito"
    assert server.callback_ports == (53682, 53683, 53684)


@pytest.mark.parametrize(
    "doc",
    [
        {"Stacks": []},
        {"Stacks": [{"Outputs": [{"OutputKey": "Issuer", "OutputValue": ISSUER}]}] * 2},
        [1, 2],
        {"Issuer": ISSUER, "ClientId": 7, "ResourceServerIdentifier": URL},
        {"Issuer": ISSUER, "ResourceServerIdentifier": URL},
        "text",
    ],
    ids=["no-stack", "two-stacks", "not-outputs", "non-string", "no-client-id", "string"],
)
def test_both_readers_refuse_what_is_not_usable_outputs(tmp_path: Path, doc: Any) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError):
        server_config_from_outputs(path)
    with pytest.raises(ValueError, match=str(path)):
        read_outputs(path)


def test_the_broker_refuses_outputs_for_another_server(tmp_path: Path) -> None:
    path = write(tmp_path, FLAT)
    assert server_config_from_outputs(path, URL + "/").url == URL  # canonical forms compare
    with pytest.raises(ConfigError, match=r"not https://other\.example/mcp"):
        server_config_from_outputs(path, "https://other.example/mcp")
    with pytest.raises(ConfigError, match="CallbackPorts"):
        server_config_from_outputs(write(tmp_path, {**FLAT, "CallbackPorts": "80,x"}))


def test_serve_option_sets_issuer_client_resource_and_jwks(tmp_path: Path) -> None:
    path = write(tmp_path, SHAPES["terraform"])
    args = build_parser().parse_args(["serve", "--from-cloudformation", str(path)])
    settings = settings_from_args(args)
    assert settings.issuer == ISSUER
    assert settings.client_ids == ("4v8abc",)
    assert settings.resource == URL
    assert settings.jwks_url == FLAT["JwksUri"]
    assert settings.profile == "cognito"

    later = build_parser().parse_args(
        ["serve", "--from-cloudformation", str(path), "--client-id", "extra", "--issuer", "x"]
    )
    assert later.client_ids == ["4v8abc", "extra"] and later.issuer == "x"


def test_serve_option_reports_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, {"nothing": "here"})
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["serve", "--from-cloudformation", str(path)])
    assert info.value.code == 2
    assert "--from-cloudformation" in capsys.readouterr().err


@pytest.mark.integration
def test_a_served_demo_trusts_exactly_the_stacks_client(jwks: JwksServer, tmp_path: Path) -> None:
    # A Cognito resource server identifier is any string: here not the URL, which the server
    # learns only once it has bound port 0.
    resource = "https://mcp.example.com/mcp"
    outputs = {
        **FLAT,
        "Issuer": jwks.issuer,
        "ClientId": "stack-client",
        "ResourceServerIdentifier": resource,
        "JwksUri": jwks.jwks_url,
    }
    path = write(tmp_path, shapes(outputs)["describe-stacks"])
    cmd = demo_server_cmd("serve", "--port", "0", "--from-cloudformation", str(path))
    with ServerProcess(cmd, tmp_path / "serve.log") as server:
        url = server.url
        token = jwks.issuer_obj.token(resource, client_id="stack-client")
        me = call_tool(url, token, "whoami").structured_content
        assert me["scopes"] == [f"{resource}/tools"]
        other = jwks.issuer_obj.token(resource, client_id="demo-broker")
        assert post_mcp(url, initialize_body(), other).status_code == 401
        assert jwks.discovery_requests == 0  # JwksUri from the outputs, no discovery
