"""``mcp-broker connect URL``: the stdio bridge as a command."""

from __future__ import annotations

import argparse
import logging
import sys

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Serve MCP on stdin/stdout and relay every message to the Streamable HTTP MCP server at URL,
with the broker's current access token on each request. For MCP clients that can only launch
stdio servers, e.g. in a client's config: {"command": "mcp-broker", "args": ["connect", URL]}.

Tokens come from the running broker (its local token API) when one runs, else from the
broker's store directly. They are refreshed as needed; after a 401 the bridge asks the broker
once more and retries; a 403 insufficient_scope makes it sign in again with the added scopes.
When you must sign in, each request is answered with a JSON-RPC error (code -32010) saying so:
sign in from the tray or with `mcp-broker login URL`, then retry. Any other failure of one
request (the server unreachable, an answer that is not MCP, an error in the bridge: -32012)
is answered as an error for that request, and the session goes on. Logs go to stderr; stdout
carries only MCP. The bridge exits when its stdin closes (exit code 0), or, should it fail as a
whole, after answering what it owes, with exit code 1 and a one-line message.
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

    from broker.bridge.failures import describe, unexpected
    from broker.bridge.relay import serve_stdio
    from broker.bridge.sources import open_token_source
    from broker.oauth.resource import canonical_resource

    url: str = args.url
    tokens = open_token_source(canonical_resource(url), getattr(args, "config", None))
    try:
        anyio.run(serve_stdio, url, tokens)
    except Exception as exc:
        # Not a traceback on its way out to whoever launched us: logged, scrubbed, and a line.
        unexpected(logger, "in the bridge", exc)
        print(f"mcp-broker connect: the bridge stopped: {describe(exc)}", file=sys.stderr)
        return 1
    finally:
        tokens.close()
    return 0
