"""The Cognito CloudFormation template: cfn-lint, then a stack in moto read back via the API."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ParamValidationError

from broker.integrations.cloudformation import server_config_from_outputs
from broker.oauth.providers import FIXED_CALLBACK_PORTS
from tests.installer import moto_cognito

TEMPLATE = Path(__file__).resolve().parents[2] / "installer/cloudformation/mcp-broker-cognito.yaml"
URL = "https://mcp.example.com/mcp"
REGION = "eu-west-1"
CALLBACKS = {
    f"http://{host}:{port}/callback"
    for host in ("localhost", "127.0.0.1")
    for port in FIXED_CALLBACK_PORTS
}


@pytest.mark.integration
def test_cfn_lint_accepts_the_template_including_informational_checks() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"  # the venv's (pip install cfn-lint)
    result = subprocess.run(
        [str(cfn_lint), "--include-checks", "I", "--", str(TEMPLATE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    moto_cognito.register()
    moto_cognito.BRANDINGS.clear()
    with moto.mock_aws():
        yield


def deploy(**parameters: str) -> dict[str, str]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    params = {"McpServerUrl": URL, "DomainPrefix": "acme-mcp", **parameters}
    cfn.create_stack(
        StackName="mcp-broker-cognito",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
    )
    stack = cfn.describe_stacks(StackName="mcp-broker-cognito")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def idp() -> Any:
    return boto3.client("cognito-idp", region_name=REGION)


def the_client(outputs: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = idp().describe_user_pool_client(
        UserPoolId=outputs["UserPoolId"], ClientId=outputs["ClientId"]
    )["UserPoolClient"]
    return found


def test_the_stack_creates_a_public_pkce_client_with_the_fixed_loopback_callbacks(
    aws: None,
) -> None:
    outputs = deploy()
    client = the_client(outputs)

    assert "ClientSecret" not in client  # public: PKCE protects the code
    assert client["AllowedOAuthFlows"] == ["code"]
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert set(client["CallbackURLs"]) == CALLBACKS
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    assert client["ExplicitAuthFlows"] == ["ALLOW_REFRESH_TOKEN_AUTH"]
    assert set(client["AllowedOAuthScopes"]) == {
        "openid",
        "email",
        "profile",
        f"{URL}/tools",
        f"{URL}/admin",
    }
    assert client["AccessTokenValidity"] == 60
    assert client["RefreshTokenValidity"] == 30
    assert client["TokenValidityUnits"] == {
        "AccessToken": "minutes",
        "IdToken": "minutes",
        "RefreshToken": "days",
    }
    assert client["EnableTokenRevocation"] is True
    assert "RefreshTokenRotation" not in client  # off unless asked for


def test_the_resource_server_is_the_mcp_server_with_tools_and_admin_scopes(aws: None) -> None:
    outputs = deploy()
    server = idp().describe_resource_server(UserPoolId=outputs["UserPoolId"], Identifier=URL)[
        "ResourceServer"
    ]
    assert server["Identifier"] == URL == outputs["ResourceServerIdentifier"]
    assert {s["ScopeName"] for s in server["Scopes"]} == {"tools", "admin"}
    assert outputs["Scopes"].split() == [f"{URL}/tools", f"{URL}/admin"]


def test_the_pool_domain_and_outputs_describe_the_same_pool(aws: None) -> None:
    outputs = deploy()
    pool = idp().describe_user_pool(UserPoolId=outputs["UserPoolId"])["UserPool"]
    domain = idp().describe_user_pool_domain(Domain="acme-mcp")["DomainDescription"]

    assert pool["UsernameAttributes"] == ["email"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert domain["UserPoolId"] == pool["Id"]
    assert outputs["Issuer"] == f"https://cognito-idp.{REGION}.amazonaws.com/{pool['Id']}"
    assert outputs["Region"] == REGION
    assert outputs["UserPoolArn"] == pool["Arn"]
    base = f"https://acme-mcp.auth.{REGION}.amazoncognito.com"
    assert outputs["Domain"] == base.removeprefix("https://")
    assert outputs["AuthorizationEndpoint"] == f"{base}/oauth2/authorize"
    assert outputs["TokenEndpoint"] == f"{base}/oauth2/token"
    assert outputs["RevocationEndpoint"] == f"{base}/oauth2/revoke"
    assert outputs["JwksUri"] == f"{outputs['Issuer']}/.well-known/jwks.json"
    assert outputs["CallbackPorts"] == "53682,53683,53684"
    # managed login: every client needs a branding style, or its sign-in page is an error page
    brandings = moto_cognito.BRANDINGS
    assert brandings == [
        {
            "UserPoolId": pool["Id"],
            "ClientId": outputs["ClientId"],
            "UseCognitoProvidedValues": True,
        }
    ]


def test_rotation_token_lifetimes_and_classic_pages_follow_the_parameters(aws: None) -> None:
    outputs = deploy(
        RefreshTokenRotation="true",
        RefreshTokenRotationGracePeriodSeconds="30",
        AccessTokenValidityMinutes="5",
        RefreshTokenValidityDays="7",
        LoginPages="classic",
        AllowSelfSignUp="true",
    )
    client = the_client(outputs)
    assert client["RefreshTokenRotation"] == {"Feature": "ENABLED", "RetryGracePeriodSeconds": 30}
    assert (client["AccessTokenValidity"], client["RefreshTokenValidity"]) == (5, 7)
    pool = idp().describe_user_pool(UserPoolId=outputs["UserPoolId"])["UserPool"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is False
    assert moto_cognito.BRANDINGS == []


def test_describe_stacks_output_configures_the_broker(aws: None, tmp_path: Path) -> None:
    outputs = deploy()
    cfn = boto3.client("cloudformation", region_name=REGION)
    described = cfn.describe_stacks(StackName="mcp-broker-cognito")
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(described, default=str))  # what `aws cloudformation` prints

    server = server_config_from_outputs(path, URL)

    assert server.url == URL
    assert server.client_id == outputs["ClientId"]
    assert server.issuer == outputs["Issuer"]
    assert server.provider == "cognito"
    assert server.callback_ports == FIXED_CALLBACK_PORTS


def test_a_misspelt_property_fails_like_the_real_api_would(aws: None) -> None:
    """The handlers check each request against botocore's model of the Cognito API."""
    bad = TEMPLATE.read_text().replace("AllowedOAuthFlows: [code]", "AllowedOAuthFlow: [code]")
    cfn = boto3.client("cloudformation", region_name=REGION)
    with pytest.raises(
        ParamValidationError, match='Unknown parameter in input: "AllowedOAuthFlow"'
    ):
        cfn.create_stack(
            StackName="broken",
            TemplateBody=bad,
            Parameters=[
                {"ParameterKey": "McpServerUrl", "ParameterValue": URL},
                {"ParameterKey": "DomainPrefix", "ParameterValue": "acme-mcp"},
            ],
        )
