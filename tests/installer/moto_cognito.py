"""Cognito resource handlers for moto's CloudFormation emulation, which has none of its own.

moto emulates the Cognito *API* (``cognito-idp``) but its CloudFormation engine skips
``AWS::Cognito::*`` resources with a warning. Each handler here does what CloudFormation's own
handler does: it turns the resource's properties into the matching Cognito API request, checks
that request against botocore's model of the real API (unknown or misspelt properties, wrong
types: the same ``ParamValidationError`` a real call would raise), and sends it to moto's Cognito
backend through boto3. So a stack built from the template is read back with the Cognito API just
as it would be on AWS.

``AWS::Cognito::ManagedLoginBranding`` is validated the same way, but moto has no branding API:
it is recorded in :data:`BRANDINGS` instead of being sent.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import boto3
import botocore.session
from botocore.model import Shape
from botocore.validate import validate_parameters
from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel

BRANDINGS: list[dict[str, Any]] = []

_COGNITO = botocore.session.get_session().get_service_model("cognito-idp")


def api_request(
    operation: str, properties: dict[str, Any], rename: dict[str, str]
) -> dict[str, Any]:
    """The API request for ``properties``: renamed, coerced like CloudFormation does (numbers
    and booleans given as strings), and validated against the real API's input shape."""
    shape = _COGNITO.operation_model(operation).input_shape
    params = _coerce(shape, {rename.get(k, k): v for k, v in properties.items()})
    validate_parameters(params, shape)
    return params


def _coerce(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members  # type: ignore[attr-defined]
        return {k: _coerce(members[k], v) if k in members else v for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_coerce(shape.member, v) for v in value]  # type: ignore[attr-defined]
    if kind in ("integer", "long") and isinstance(value, str):
        return int(value)
    if kind == "boolean" and isinstance(value, str):
        return value.lower() == "true"
    return value


def _client(region: str) -> Any:
    return boto3.client("cognito-idp", region_name=region)


class _Handler:
    """The parts every handler shares; each concrete handler must subclass CloudFormationModel
    directly, as moto finds handlers through ``CloudFormationModel.__subclasses__()``."""

    TYPE: ClassVar[str]
    ATTRIBUTES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, physical_id: str, attributes: dict[str, str] | None = None) -> None:
        self.physical_id = physical_id
        self.attributes = attributes or {}

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.attributes[attribute_name]

    def is_created(self) -> bool:
        return True

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        return cls.create(cloudformation_json["Properties"], region_name)

    @classmethod
    def create(cls, props: dict[str, Any], region: str) -> Any:
        """Send the resource's API request to moto; the handler for its resource type."""
        raise NotImplementedError

    @classmethod
    def update_from_cloudformation_json(cls, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("stack updates are not emulated")

    @classmethod
    def delete_from_cloudformation_json(cls, *args: Any, **kwargs: Any) -> None:
        return None


class UserPool(_Handler, CloudFormationModel):
    ATTRIBUTES = ("Arn", "ProviderName", "ProviderURL", "UserPoolId")

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Cognito::UserPool"

    @classmethod
    def create(cls, props: dict[str, Any], region: str) -> UserPool:
        request = api_request("CreateUserPool", props, {"UserPoolName": "PoolName"})
        pool = _client(region).create_user_pool(**request)["UserPool"]
        provider = f"cognito-idp.{region}.amazonaws.com/{pool['Id']}"
        attributes = {
            "Arn": pool["Arn"],
            "ProviderName": provider,
            "ProviderURL": provider,
            "UserPoolId": pool["Id"],
        }
        return cls(pool["Id"], attributes)


class UserPoolDomain(_Handler, CloudFormationModel):
    ATTRIBUTES = ("CloudFrontDistribution",)

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Cognito::UserPoolDomain"

    @classmethod
    def create(cls, props: dict[str, Any], region: str) -> UserPoolDomain:
        request = api_request("CreateUserPoolDomain", props, {})
        # moto's domain API predates managed login: it takes no ManagedLoginVersion.
        request.pop("ManagedLoginVersion", None)
        created = _client(region).create_user_pool_domain(**request)
        return cls(
            request["Domain"], {"CloudFrontDistribution": created.get("CloudFrontDomain", "")}
        )


class UserPoolResourceServer(_Handler, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Cognito::UserPoolResourceServer"

    @classmethod
    def create(cls, props: dict[str, Any], region: str) -> UserPoolResourceServer:
        request = api_request("CreateResourceServer", props, {})
        server = _client(region).create_resource_server(**request)["ResourceServer"]
        return cls(server["Identifier"])


class UserPoolClient(_Handler, CloudFormationModel):
    ATTRIBUTES = ("ClientId", "ClientSecret", "Name")

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Cognito::UserPoolClient"

    @classmethod
    def create(cls, props: dict[str, Any], region: str) -> UserPoolClient:
        request = api_request("CreateUserPoolClient", props, {})
        client = _client(region).create_user_pool_client(**request)["UserPoolClient"]
        attributes = {
            "ClientId": client["ClientId"],
            "ClientSecret": client.get("ClientSecret", ""),
            "Name": client["ClientName"],
        }
        return cls(client["ClientId"], attributes)


class ManagedLoginBranding(_Handler, CloudFormationModel):
    ATTRIBUTES = ("ManagedLoginBrandingId",)

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Cognito::ManagedLoginBranding"

    @classmethod
    def create(cls, props: dict[str, Any], region: str) -> ManagedLoginBranding:
        request = api_request("CreateManagedLoginBranding", props, {})
        BRANDINGS.append(request)
        branding_id = str(uuid.uuid4())
        return cls(branding_id, {"ManagedLoginBrandingId": branding_id})


def register() -> None:
    """Make moto's CloudFormation see the handlers (its model map is cached)."""
    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
