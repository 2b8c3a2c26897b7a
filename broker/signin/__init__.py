"""Signing in: discovery over the network, the browser sign-in flow, the loopback callback, and
the ``httpx2.Auth`` that answers an MCP server's 401/403.
"""
