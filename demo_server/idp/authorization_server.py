"""authlib's Flask ``AuthorizationServer`` wired to this pool's users, clients, store and keys."""

from __future__ import annotations

import binascii
import logging
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidClientError

from demo_server.dpop import ReplayCache
from demo_server.idp.device import DeviceAuthorizationEndpoint, DeviceCodeGrant, DeviceStore
from demo_server.idp.dpop import TokenEndpointDpop, current_jkt
from demo_server.idp.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
    S256CodeChallenge,
)
from demo_server.idp.id_jag_grant import IdJagBearerGrant, IdJagRedemption
from demo_server.idp.id_jag_issuer import TokenExchangeGrant
from demo_server.idp.models import Client, User
from demo_server.idp.revocation import CognitoRevocationEndpoint
from demo_server.idp.settings import IdpSettings
from demo_server.idp.store import Store
from demo_server.idp.tokens import TokenIssuer
from demo_server.idp.trusted_idps import TrustedIdps
from demo_server.idp.workload_grant import WorkloadBearerGrant, WorkloadRedemption

logger = logging.getLogger(__name__)


class IdpAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """One user pool: its directory, grant state and token issuer."""

    def __init__(self, settings: IdpSettings) -> None:
        super().__init__()
        assert settings.keys is not None, "settings must be resolved()"
        self.settings = settings
        self.clock = settings.clock
        self.users = {u.username: User.from_config(u, settings.pool_id) for u in settings.users}
        self.clients = {c.client_id: Client(c) for c in settings.clients}
        self.resources = frozenset(rs.identifier for rs in settings.resource_servers)
        self.store = Store(settings.clock)
        ttls = (settings.access_token_ttl, settings.id_token_ttl, settings.refresh_token_ttl)
        self.tokens = TokenIssuer(
            settings.issuer,
            settings.keys,
            self.store,
            ttls,
            settings.clock,
            round_expiry_up=settings.round_expiry_up,
            binding=current_jkt,
        )
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_endpoint(CognitoRevocationEndpoint)
        self.register_extensions(settings)

    def register_extensions(self, settings: IdpSettings) -> None:
        """The non-Cognito options: the device flow (RFC 8628), DPoP (RFC 9449),
        enterprise-managed authorization and workload identity federation. The JWT bearer grant
        is one grant type for both of the last: with workload issuers trusted, their grant is the
        one registered, and hands ID-JAGs on (:meth:`get_token_grant`)."""
        enterprise = settings.enterprise
        self.devices = DeviceStore(settings.clock)
        if settings.device_flow:
            self.register_grant(DeviceCodeGrant)
            self.register_endpoint(DeviceAuthorizationEndpoint)
        self.dpop = TokenEndpointDpop(settings.dpop, self.clock) if settings.dpop.enabled else None
        self.id_jag_redemption: IdJagRedemption | None = None
        if enterprise.issue_id_jags:
            self.register_grant(TokenExchangeGrant)
        if enterprise.trusted_idps:
            trusted = TrustedIdps(enterprise.trusted_idps, self.clock)
            self.id_jag_redemption = IdJagRedemption(trusted, ReplayCache(self.clock))
        self.workload_redemption: WorkloadRedemption | None = None
        if enterprise.trusted_workloads:
            workloads = TrustedIdps(enterprise.trusted_workloads, self.clock)
            workloads.check_files()  # a missing or broken JWKS file stops the start
            self.workload_redemption = WorkloadRedemption(workloads, ReplayCache(self.clock))
            self.register_grant(WorkloadBearerGrant)
        elif enterprise.trusted_idps:
            self.register_grant(IdJagBearerGrant)

    def get_token_grant(self, request: Any) -> Any:
        """authlib's choice by ``grant_type``; a JWT bearer assertion that is an ID-JAG (a
        trusted IdP's, or typed as one) goes to the ID-JAG grant when workloads are trusted too."""
        grant = super().get_token_grant(request)
        if (
            isinstance(grant, WorkloadBearerGrant)
            and self.id_jag_redemption is not None
            and not grant.is_for_workload()
        ):
            return IdJagBearerGrant(request, self)
        return grant

    def create_token_response(self, request: Any = None) -> Any:
        """authlib's token endpoint, behind the DPoP proof check when ``--dpop`` is on."""
        respond = super().create_token_response
        return respond(request) if self.dpop is None else self.dpop.around(lambda: respond(request))

    def query_client(self, client_id: Any) -> Client | None:
        return self.clients.get(client_id) if isinstance(client_id, str) else None

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Nothing to do: refresh tokens are stored as they are minted."""

    def authenticate_client(
        self, request: Any, methods: list[str], endpoint: str = "token"
    ) -> Client:
        """authlib's client authentication, with undecodable Basic credentials → invalid_client."""
        try:
            client: Client = super().authenticate_client(request, methods, endpoint)
        except (UnicodeDecodeError, binascii.Error, ValueError) as error:
            logger.info("unreadable client credentials: %s", type(error).__name__)
            raise InvalidClientError(description="Unreadable client credentials.") from error
        return client
