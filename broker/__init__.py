"""mcp-oauth-broker: sign in once per MCP server, keep tokens in the OS keyring, refresh them in
the background, and hand current access tokens to local MCP clients."""

__version__ = "0.1.0"
