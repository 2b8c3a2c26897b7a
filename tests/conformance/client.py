"""The conformance harness's client: a thin adapter over the broker library.

The harness (``@modelcontextprotocol/conformance client``) runs this file with the MCP server URL
as its last argument and the scenario in ``MCP_CONFORMANCE_SCENARIO``. All protocol decisions
are the broker's; this file only wires the parts and replaces the browser with an *authorizer*
that follows the authorization redirect without a human: it GETs the authorization URL and
delivers the ``Location`` to the broker's own loopback listener, as a browser would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from broker.discovery import LimitedSender, discover
from broker.errors import BrokerError
from broker.httpauth import BrokerAuth, ServerAuthenticator
from broker.login import ClientRegistry, SignIn
from broker.oauth.registration import ClientCredentials

logger = logging.getLogger("conformance-client")

#: The Client ID Metadata Document URL the harness expects (its ``basic-cimd`` scenario).
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"
REDIRECTS = {301, 302, 303, 307, 308}


def authorizer(url: str) -> bool:
    """Stand-in for ``webbrowser.open``: approve instantly and hand the redirect back."""
    with httpx2.Client(follow_redirects=False, timeout=10) as http:
        answer = http.get(url)
        location = answer.headers.get("location")
        if answer.status_code not in REDIRECTS or not location:
            raise RuntimeError(f"authorization endpoint answered {answer.status_code}")
        http.get(location)
    return True


def client_mode() -> str:
    version = os.environ.get("MCP_CONFORMANCE_PROTOCOL_VERSION")
    return "auto" if version is None or version in MODERN_PROTOCOL_VERSIONS else "legacy"


def clients_from_context(server_url: str, send: LimitedSender) -> ClientRegistry:
    clients = ClientRegistry(client_metadata_url=CLIENT_METADATA_URL)
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    if context.get("client_id"):
        # Pre-registered credentials are bound to an issuer: learn which one serves this server.
        issuer = discover(server_url, send).issuer
        clients.add_preregistered(
            ClientCredentials(context["client_id"], issuer, context.get("client_secret"))
        )
    return clients


async def session(server_url: str, auth: BrokerAuth) -> None:
    async with httpx2.AsyncClient(auth=auth, timeout=30.0) as http:
        transport = streamable_http_client(server_url, http_client=http)
        async with Client(transport, mode=client_mode()) as client:  # type: ignore[arg-type]
            tools = await client.list_tools()
            logger.info("listed %d tools", len(tools.tools))
            if tools.tools:
                await client.call_tool(tools.tools[0].name, {})
                logger.info("called %s", tools.tools[0].name)


def _broker_error(exc: BaseException) -> BrokerError | None:
    """The broker's own error inside whatever the async stack wrapped it in."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _broker_error(inner)) is not None:
                return found
    if exc.__cause__ is not None:
        return _broker_error(exc.__cause__)
    return None


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    # httpx2 logs every request line at INFO; the authorizer's carry the code and state.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    server_url = argv[-1]
    logger.info("scenario %s", os.environ.get("MCP_CONFORMANCE_SCENARIO", "?"))
    send = LimitedSender()
    try:
        sign_in = SignIn(send, clients_from_context(server_url, send), opener=authorizer)
        auth = BrokerAuth(ServerAuthenticator(server_url, sign_in, send))
        asyncio.run(session(server_url, auth))
    except BaseException as exc:
        refused = _broker_error(exc)
        if refused is None:
            raise
        print(f"sign-in refused: {refused}", file=sys.stderr)
        return 1
    finally:
        send.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
