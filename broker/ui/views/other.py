"""Connect an MCP client (what ``mcp-broker configure`` does, one button each) and Settings."""

from __future__ import annotations

from flask import Response, request

from broker.errors import BrokerError
from broker.ui.app import page_context
from broker.ui.views import back, note, page, pages

# -- connect an MCP client ------------------------------------------------------------------------


@pages.get("/connect")
def connect() -> Response:
    backend = page_context().backend
    try:
        found = backend.mcp_clients()
    except (BrokerError, OSError) as exc:
        note("error", f"cannot look for MCP clients: {exc}")
        found = []
    servers = [s.url for s in backend.statuses()]
    return page("connect.html", "connect", found=found, servers=servers)


@pages.post("/connect")
def connect_one() -> Response:
    backend = page_context().backend
    name = request.form.get("client", "")
    if name not in {found.name for found in backend.mcp_clients()}:
        note("error", f"{name} is not an MCP client found on this machine")
        return back("connect")
    try:
        note("info", backend.connect(name))
    except (BrokerError, OSError) as exc:
        note("error", str(exc))
    return back("connect")


# -- settings -----------------------------------------------------------------------------------


@pages.get("/settings")
def settings() -> Response:
    backend = page_context().backend
    try:
        start = backend.start_at_login()
    except (BrokerError, OSError) as exc:
        note("error", f"cannot read the start-at-login state: {exc}")
        start = None
    return page(
        "settings.html",
        "settings",
        start_at_login=start,
        config_file=backend.config_file,
        state_dir=backend.state_dir,
        audit_log=backend.clients.audit.path,
    )


@pages.post("/settings/start-at-login")
def set_start_at_login() -> Response:
    enabled = request.form.get("enabled") == "on"
    try:
        page_context().backend.set_start_at_login(enabled)
    except (BrokerError, OSError) as exc:
        note("error", str(exc))
    else:
        note("info", "The broker now starts at login." if enabled else "No longer at login.")
    return back("settings")
