"""``mcp-broker connect URL``: a stdio MCP server that relays to a remote Streamable HTTP MCP
server with the broker's tokens (DESIGN §2, "stdio bridge").

- :mod:`broker.bridge.relay` moves messages between the mcp SDK's stdio server transport and
  its Streamable HTTP client transport;
- :mod:`broker.bridge.headers` derives the HTTP routing headers a relayed message needs;
- :mod:`broker.bridge.transport` signs each HTTP request and answers refusals as JSON-RPC
  errors;
- :mod:`broker.bridge.sources` picks the token source: the running broker's API
  (:mod:`broker.bridge.api_tokens`) or the library (:mod:`broker.bridge.library_tokens`);
- :mod:`broker.bridge.command` is the ``connect`` command.
"""

from broker.bridge.command import configure_connect_parser, run_connect

__all__ = ["configure_connect_parser", "run_connect"]
