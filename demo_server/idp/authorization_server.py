"""authlib's Flask ``AuthorizationServer`` wired to this pool's users, clients, store and keys."""

from __future__ import annotations

import binascii
import logging
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidClientError

from demo_server.idp.device import DeviceAuthorizationEndpoint, DeviceCodeGrant, DeviceStore
from demo_server.idp.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
    S256CodeChallenge,
)
from demo_server.idp.models import Client, User
from demo_server.idp.revocation import CognitoRevocationEndpoint
from demo_server.idp.settings import IdpSettings
from demo_server.idp.store import Store
from demo_server.idp.tokens import TokenIssuer

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
        )
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_endpoint(CognitoRevocationEndpoint)
        self.devices = DeviceStore(settings.clock)
        if settings.device_flow:  # RFC 8628: not Cognito behaviour
            self.register_grant(DeviceCodeGrant)
            self.register_endpoint(DeviceAuthorizationEndpoint)

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
