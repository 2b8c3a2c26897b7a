"""A tiny MCP server (the SDK's ``MCPServer`` on Streamable HTTP, uvicorn on a thread) whose tools
talk back while they run: progress notifications, an elicitation request to the client, and the
``Authorization`` header it was sent, so a test can see what the bridge relayed. Like any
protected MCP server, it answers a request without a bearer token with 401."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

from demo_server.resource.server import bind_loopback


class Name(BaseModel):
    name: str


def build_server() -> MCPServer:
    mcp = MCPServer("bridge-chatty")

    @mcp.tool()
    async def count(n: int, ctx: Context) -> str:
        """Report progress n times, then answer."""
        for i in range(1, n + 1):
            await ctx.report_progress(i, n, f"step {i}")
        return f"counted to {n}"

    @mcp.tool()
    async def greet(ctx: Context) -> str:
        """Ask the client for a name (a server-to-client request), then greet it."""
        answer = await ctx.elicit("Who are you?", Name)
        if answer.action != "accept" or answer.data is None:
            return f"no name ({answer.action})"
        return f"hello {answer.data.name}"

    @mcp.tool()
    def authorization(ctx: Context) -> str:
        """The Authorization header of this request, as the server received it."""
        return (ctx.headers or {}).get("authorization", "")

    return mcp


def bearer_required(app: Any) -> Any:
    """The ASGI app behind a 401 for any HTTP request that carries no ``Authorization``."""

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not any(k == b"authorization" for k, _ in scope["headers"]):
            headers = [(b"www-authenticate", b"Bearer"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return guarded


@contextmanager
def chatty_server(*, protected: bool = True) -> Iterator[str]:
    """Serve on a loopback port bound here (port 0; ``protected``: behind a 401 without a bearer
    token); yields the MCP URL."""
    sock = bind_loopback("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    app = build_server().streamable_http_app(host="127.0.0.1")
    if protected:
        app = bearer_required(app)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="chatty-mcp", daemon=True
    )
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the chatty MCP server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
