"""The resource side of mcp-oauth-broker's demo: a protected MCP server and a local,
Cognito-compatible authorization server. Never imports ``broker``."""
