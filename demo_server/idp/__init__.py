"""``mcp-demo-server idp``: a local authorization server that behaves like an AWS Cognito user pool.

It serves the pool's OpenID discovery document only at
``<issuer>/.well-known/openid-configuration`` (issuer ``http://HOST:PORT/<pool id>``, default
``http://127.0.0.1:9000/us-east-1_Demo00001``), its keys at ``<issuer>/.well-known/jwks.json``,
and the hosted-UI endpoints ``/oauth2/authorize``, ``/oauth2/token``, ``/oauth2/revoke``,
``/oauth2/userInfo``, ``/login`` and ``/logout`` on ``http://HOST:PORT``. Like Cognito it does
not advertise PKCE (``--advertise-pkce`` does), refuses ``plain``, matches callback URLs exactly,
issues RS256 access tokens without ``aud`` unless ``resource`` names a resource server, and
returns no new refresh token unless ``--refresh-token-rotation``.

Seeds: the public app client ``demo-broker`` (callbacks ``http://localhost:P/callback`` and
``http://127.0.0.1:P/callback`` for P = 53682, 53683, 53684), a resource server per
``--resource-server`` (default ``http://127.0.0.1:8000/mcp``, scopes ``<id>/tools`` and
``<id>/admin``), and the user ``demo`` (demo@example.com, group ``demo-users``) whose password is
random per start unless ``--demo-password`` is given; it is printed at start-up. Also a
confidential machine client ``demo-m2m`` (Cognito M2M: the ``client_credentials`` grant only,
client_secret_basic or client_secret_post, custom resource-server scopes only; its access tokens
have ``client_id``, ``scope``, ``token_use=access`` and no ``username``), whose secret is random
per start unless ``--m2m-secret`` is given; printed at start-up
(``m2m client: demo-m2m  secret: ...``).

``--device-flow`` is NOT Cognito behaviour (Cognito has no device flow): it adds the OAuth device
authorization grant (RFC 8628) for ``demo-broker``, advertised as ``device_authorization_endpoint``,
with a verification page at ``/device`` where the signed-in user approves or denies the code.

Off by default and not Cognito behaviour (see "not Cognito behaviour" below): acting as an
enterprise IdP that issues ID-JAGs by token exchange (``--enterprise-idp``), redeeming a trusted
IdP's ID-JAGs with the JWT bearer grant (``--trust-idp``), redeeming a trusted workload issuer's
JWTs with the same grant (``--trust-workload``, workload identity federation), and DPoP-bound
tokens (``--dpop``).

Config file (``--config``; TOML, or JSON when the name ends in .json): see below.
"""

from demo_server.idp import config_file

__doc__ = f"{__doc__}\n{config_file.__doc__}"
from demo_server.idp.app import create_app
from demo_server.idp.command import configure_parser, run
from demo_server.idp.running import RunningIdp, start
from demo_server.idp.settings import (
    ClientConfig,
    IdpSettings,
    ResourceServerConfig,
    UserConfig,
)

__all__ = [
    "ClientConfig",
    "IdpSettings",
    "ResourceServerConfig",
    "RunningIdp",
    "UserConfig",
    "configure_parser",
    "create_app",
    "run",
    "start",
]
