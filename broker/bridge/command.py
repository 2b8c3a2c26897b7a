"""``mcp-broker connect URL``: the stdio bridge as a command."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Serve MCP on stdin/stdout and relay every message to the Streamable HTTP MCP server at URL,
with the broker's current access token on each request. For MCP clients that can only launch
stdio servers, e.g. in a client's config: {"command": "mcp-broker", "args": ["connect", URL]}.

Tokens come from the running broker (its local token API) when one runs, else from the
broker's store directly. They are refreshed as needed; after a 401 the bridge asks the broker
once more and retries; a 403 insufficient_scope makes it sign in again with the added scopes.
When you must sign in, each request is answered with a JSON-RPC error (code -32010) saying so:
sign in from the tray or with `mcp-broker login URL`, then retry. Logs go to stderr; stdout
carries only MCP. The bridge exits when its stdin closes.
"""


def configure_connect_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "connect",
        help="serve MCP on stdio, relayed to URL with the broker's tokens (for stdio-only clients)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", metavar="URL", help="the MCP server URL, as added")
    parser.set_defaults(run=run_connect, needs_broker=False)
    return parser


def run_connect(args: argparse.Namespace, *_: object) -> int:
    """Run the bridge until stdin closes. Extra positional arguments (a broker, an output
    stream) are accepted and ignored: stdout belongs to MCP, tokens are found here."""
    # Loaded here so that other commands do not pay for them.
    import anyio

    from broker.bridge.relay import serve_stdio
    from broker.bridge.sources import open_token_source
    from broker.oauth.resource import canonical_resource

    url: str = args.url
    tokens = open_token_source(canonical_resource(url), getattr(args, "config", None))
    try:
        anyio.run(serve_stdio, url, tokens)
    finally:
        tokens.close()
    return 0
