"""The Terraform configuration, checked without terraform: it parses, and its inputs, outputs and
key settings are those of the CloudFormation template."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2  # python-hcl2
import pytest
import yaml

from broker.integrations.cloudformation import normalized
from broker.oauth.providers import FIXED_CALLBACK_PORTS

INSTALLER = Path(__file__).resolve().parents[2] / "installer"
TERRAFORM = INSTALLER / "terraform"
TEMPLATE = INSTALLER / "cloudformation" / "mcp-broker-cognito.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !Sub, …) read as plain values."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _tagged)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    return loaded


def unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of names and string literals."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def blocks(kind: str) -> dict[str, dict[str, Any]]:
    """Every ``kind`` block (variable, output, …) of every .tf file, by its unquoted name."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            doc = hcl2.load(handle)
        for block in doc.get(kind, []):
            for name, body in block.items():
                found[unquote(name)] = body
    return found


def resources() -> dict[str, dict[str, Any]]:
    """``{"<type>.<name>": body}`` for every resource block."""
    found: dict[str, dict[str, Any]] = {}
    for rtype, by_name in blocks("resource").items():
        for name, body in by_name.items():
            found[f"{rtype}.{unquote(name)}"] = body
    return found


def test_every_file_parses_as_hcl() -> None:
    files = sorted(TERRAFORM.glob("*.tf"))
    assert {p.name for p in files} == {"main.tf", "outputs.tf", "variables.tf", "versions.tf"}
    for path in files:
        with path.open() as handle:
            assert hcl2.load(handle), path


def test_outputs_match_the_cloudformation_outputs_by_name(template: dict[str, Any]) -> None:
    terraform = {normalized(name) for name in blocks("output")}
    cloudformation = {normalized(name) for name in template["Outputs"]}
    assert terraform == cloudformation
    for required in ("issuer", "clientid", "resourceserveridentifier", "callbackports"):
        assert required in terraform


def test_variables_match_the_cloudformation_parameters_with_the_same_defaults(
    template: dict[str, Any],
) -> None:
    variables = {normalized(name): body for name, body in blocks("variable").items()}
    parameters = {normalized(name): body for name, body in template["Parameters"].items()}
    assert set(variables) == set(parameters)
    for name, parameter in parameters.items():
        default = variables[name].get("default")
        if "Default" not in parameter:
            assert default is None, name
        elif isinstance(default, bool):
            assert str(default).lower() == parameter["Default"], name
        else:
            assert unquote(default) == parameter["Default"], name


def test_the_url_and_domain_checks_are_the_templates_patterns(template: dict[str, Any]) -> None:
    variables = blocks("variable")
    for variable, parameter in (
        ("mcp_server_url", "McpServerUrl"),
        ("domain_prefix", "DomainPrefix"),
    ):
        condition = variables[variable]["validation"][0]["condition"]
        pattern = re.search(r'regex\("((?:[^"\\]|\\.)*)"', condition)
        assert pattern is not None, condition
        hcl_pattern = pattern.group(1).replace("\\\\", "\\")
        assert hcl_pattern == template["Parameters"][parameter]["AllowedPattern"]


def test_the_broker_client_is_public_code_flow_with_the_fixed_callbacks(
    template: dict[str, Any],
) -> None:
    client = resources()["aws_cognito_user_pool_client.broker"]
    assert client["generate_secret"] is False
    assert client["allowed_oauth_flows_user_pool_client"] is True
    assert [unquote(f) for f in client["allowed_oauth_flows"]] == ["code"]
    assert [unquote(f) for f in client["explicit_auth_flows"]] == ["ALLOW_REFRESH_TOKEN_AUTH"]
    assert client["callback_urls"] == "${local.callback_urls}"
    assert "refresh_token_rotation" in str(client)  # the optional rotation block

    local = blocks("locals")
    assert local["callback_ports"] == list(FIXED_CALLBACK_PORTS)
    assert '"localhost", "127.0.0.1"' in local["callback_urls"]
    cfn_urls = template["Resources"]["BrokerClient"]["Properties"]["CallbackURLs"]
    assert sorted({int(u.rsplit(":", 1)[1].split("/")[0]) for u in cfn_urls}) == list(
        FIXED_CALLBACK_PORTS
    )


def test_the_resource_server_is_the_mcp_server_with_tools_and_admin() -> None:
    server = resources()["aws_cognito_resource_server.mcp"]
    assert server["identifier"] == "${var.mcp_server_url}"
    assert {unquote(s["scope_name"]) for s in server["scope"]} == {"tools", "admin"}


def test_the_same_resources_as_the_template(template: dict[str, Any]) -> None:
    kinds = {key.split(".")[0] for key in resources()}
    assert kinds == {
        "aws_cognito_user_pool",
        "aws_cognito_user_pool_domain",
        "aws_cognito_resource_server",
        "aws_cognito_user_pool_client",
        "aws_cognito_managed_login_branding",
    }
    assert len(template["Resources"]) == len(kinds)
