"""``mcp-broker connect URL``: a stdio MCP server that relays to a remote Streamable HTTP MCP
server with the broker's tokens (DESIGN §2, "stdio bridge").

- :mod:`broker.bridge.relay` moves messages, as the bytes they were, between stdin/stdout and
  :mod:`broker.bridge.streamable`, the Streamable HTTP client side (POST, SSE, resumption);
- :mod:`broker.bridge.headers` derives the HTTP routing headers a relayed message needs, by the
  rules in :mod:`broker.bridge.header_rules`;
- :mod:`broker.bridge.transport` sends each HTTP request through the broker's one 401/403
  handler (:mod:`broker.signin.httpauth`) and answers refusals as JSON-RPC errors;
- :mod:`broker.bridge.sources` picks the token source: the running broker's API
  (:mod:`broker.bridge.api_tokens`) or the library (:mod:`broker.bridge.library_tokens`);
- :mod:`broker.bridge.command` is the ``connect`` command.

None of it imports the mcp SDK (seconds of start-up for a relay that only moves bytes); only a
sign-in without a running broker loads the broker's sign-in code.
"""

from broker.bridge.command import configure_connect_parser, run_connect

__all__ = ["configure_connect_parser", "run_connect"]
