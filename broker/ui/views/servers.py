"""Servers: each server's state and actions; Add a server (discovery preview first, or stack
outputs)."""

from __future__ import annotations

import datetime
import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from flask import Response, request

from broker.config import ID_TOKEN, PROVIDERS, ServerConfig, replacing, same_sign_in
from broker.desktop.menu import Action, Command, Overall, View, describe, server_state
from broker.errors import BrokerError, ConfigError, PkceNotSupported
from broker.tokens.status import ServerStatus
from broker.ui.app import current_session, page_context
from broker.ui.views import back, failed, note, page, pages

#: RFC 6749 §3.3 scope-token (as ``mcp-broker login --scope`` checks it).
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True)
class ServerRow:
    status: ServerStatus
    name: str
    state: str
    words: str
    expires: str | None
    busy: bool
    signed_in: bool
    step_up: tuple[str, str] | None
    problem: str | None
    """What went wrong with the last sign-in or sign-out from here or the tray, in full."""


def _rows(statuses: list[ServerStatus], seen: View) -> list[ServerRow]:
    view = View(
        servers=tuple(statuses),
        now=time.time(),
        busy=seen.busy,
        errors=seen.errors,
        step_ups=seen.step_ups,
    )
    rows = []
    for status in statuses:
        state = server_state(status, view)
        asked = view.step_ups.get(status.url)
        rows.append(
            ServerRow(
                status=status,
                name=status.display_name,
                state=state.value,
                words=describe(status, view),
                expires=_when(status.expires_at),
                busy=status.url in view.busy,
                signed_in=state in (Overall.SIGNED_IN, Overall.REFRESHING) and bool(status.issuer),
                step_up=(asked[0], ", ".join(asked[1])) if asked else None,
                problem=view.errors.get(status.url) or status.reason,
            )
        )
    return rows


def _when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    moment = datetime.datetime.fromtimestamp(epoch).astimezone()
    return f"{moment:%Y-%m-%d %H:%M:%S %Z}"


@pages.get("/servers")
def servers() -> Response:
    backend = page_context().backend
    try:
        statuses = backend.statuses()
    except BrokerError as exc:
        failed(exc)
        statuses = []
    rows = _rows(statuses, backend.view())
    notes = current_session().take_notes()
    # While a sign-in or sign-out runs (or was just asked for), the page reloads itself every
    # few seconds (a meta refresh: no script) until it shows the outcome.
    working = any(row.busy for row in rows) or any(kind == "pending" for kind, _ in notes)
    for kind, text in notes:
        current_session().note("info" if kind == "pending" else kind, text)
    return page("servers.html", "servers", rows=rows, refresh=working)


@pages.post("/servers/action")
def server_action() -> Response:
    backend = page_context().backend
    url, action = request.form.get("url", ""), request.form.get("action", "")
    known = {status.url: status for status in backend.statuses()}
    if url not in known:
        note("error", f"{url} is not configured; add it with: mcp-broker add {url}")
        return back("servers")
    name = known[url].display_name
    if action == "sign_in":
        backend.post(Command(Action.SIGN_IN, url))
        note("pending", f"Signing in to {name}: finish in the browser window that opened.")
    elif action == "more_scopes":
        scopes = request.form.get("scope", "").split()
        bad = [s for s in scopes if not _SCOPE_TOKEN.fullmatch(s)]
        if not scopes or bad:
            note("error", "name one or more scopes, separated by spaces (RFC 6749 3.3)")
            return back("servers")
        backend.post(Command(Action.SIGN_IN, url, scope=" ".join(scopes)))
        note("pending", f"Signing in to {name} for {' '.join(scopes)}: finish in the browser.")
    elif action == "step_up":
        backend.post(Command(Action.STEP_UP, url))
        note("pending", f"Signing in to {name} again: finish in the browser window that opened.")
    elif action == "sign_out":
        backend.post(Command(Action.SIGN_OUT, url))
        note("pending", f"Signing out of {name}.")
    elif action == "confirm_remove":
        return page("remove.html", "servers", url=url, name=name)
    elif action == "change":
        return _change_form(backend.server(url))
    elif action == "remove":
        try:
            result = backend.remove_server(url)
        except BrokerError as exc:
            failed(exc)
        else:
            problem = f" ({result.problem})" if result.problem else ""
            note("info", f"Removed {url}; its tokens are deleted{problem}.")
    else:
        note("error", "unknown action")
    return back("servers")


@pages.get("/servers/add")
def add_form() -> Response:
    return page("add.html", "servers", providers=PROVIDERS, url="", provider="auto")


@pages.post("/servers/preview")
def add_preview() -> Response:
    backend = page_context().backend
    url = request.form.get("url", "").strip()
    provider = request.form.get("provider", "auto")
    values: dict[str, Any] = {"providers": PROVIDERS, "url": url, "provider": provider}
    try:
        if provider not in PROVIDERS:
            raise ConfigError(f"provider must be one of {', '.join(PROVIDERS)}")
        values["preview"] = backend.preview(url, provider)
    except PkceNotSupported as exc:
        failed(exc)
        if provider == "auto":
            note(
                "error",
                "If this is Amazon Cognito (it supports PKCE S256 without saying so), "
                "choose the Cognito profile and look it up again.",
            )
    except BrokerError as exc:
        failed(exc)
    return page("add.html", "servers", **values)


@pages.post("/servers/add")
def add_server() -> Response:
    backend = page_context().backend
    url = request.form.get("url", "").strip()
    try:
        server = ServerConfig(
            url=url,
            client_id=request.form.get("client_id", "").strip() or None,
            provider=request.form.get("provider", "auto"),
        )
        if backend.server(server.url) is not None:
            raise ConfigError(f"{server.url} is already configured; remove it first")
        saved = backend.add_server(server)
    except BrokerError as exc:
        failed(exc)
        return page("add.html", "servers", providers=PROVIDERS, url=url, provider="auto")
    note("info", f"Added {saved.url}. Sign in with its Sign in button.")
    return back("servers")


@pages.post("/servers/upload")
def add_from_outputs() -> Response:
    from broker.integrations.cloudformation import server_config_from_outputs
    from broker.paths import write_private_file

    backend = page_context().backend
    upload = request.files.get("outputs")
    url = request.form.get("url", "").strip() or None
    if upload is None or not upload.filename:
        note("error", "choose the stack's outputs file (JSON from CloudFormation or Terraform)")
        return back("servers/add")
    # The reader takes a path (as `add --from-cloudformation` does): a private file, then gone.
    path = backend.state_dir / f"outputs-{secrets.token_hex(8)}.json"
    try:
        write_private_file(path, upload.read())
        server = server_config_from_outputs(path, url)
        if backend.server(server.url) is not None:
            raise ConfigError(f"{server.url} is already configured; remove it first")
        saved = backend.add_server(server)
    except BrokerError as exc:  # named by the file the user chose, not the private copy
        note("error", str(exc).replace(str(path), upload.filename))
        return back("servers/add")
    finally:
        if path.exists():
            os.unlink(path)
    note("info", f"Added {saved.url} from the stack's outputs. Sign in with its Sign in button.")
    return back("servers")


#: The DPoP choices of the change form, as ``ServerConfig.dpop`` values.
_DPOP = {"auto": None, "always": True, "never": False}


def _change_form(server: ServerConfig | None, **values: Any) -> Response:
    if server is None:
        note("error", "that server is no longer configured")
        return back("servers")
    dpop = next(name for name, value in _DPOP.items() if value == server.dpop)
    fields: dict[str, Any] = {
        "client_id": "" if server.client_registered else server.client_id or "",
        "provider": server.provider,
        "scopes": " ".join(server.scopes or ()),
        "dpop": dpop,
        "send": server.send or "access-token",
    }
    fields.update(values)
    return page(
        "change.html",
        "servers",
        server=server,
        providers=PROVIDERS,
        # A machine's or an assertion grant's client comes with a secret or key, which only the
        # CLI takes (from standard input); a client the broker registered is its own.
        client_fixed=server.machine or server.assertion_grant,
        **fields,
    )


@pages.post("/servers/change")
def change_server() -> Response:
    """Change a server's settings, as ``mcp-broker add URL …`` does for one already added."""
    backend = page_context().backend
    url = request.form.get("url", "")
    try:
        existing = backend.server(url)
    except BrokerError:  # not even a URL
        existing = None
    if existing is None:
        note("error", f"{url} is not configured; add it with: mcp-broker add {url}")
        return back("servers")
    if url in backend.view().busy:
        # A sign-in that ends after the change would store its tokens for the old settings.
        note("error", f"{existing.display_name} is signing in or out: change it once that ends")
        return back("servers")
    form = {name: request.form.get(name, "").strip() for name in
            ("client_id", "provider", "scopes", "dpop", "send")}  # fmt: skip
    try:
        scopes = form["scopes"].split()
        bad = [scope for scope in scopes if not _SCOPE_TOKEN.fullmatch(scope)]
        if bad:
            raise ConfigError("name the scopes separated by spaces (RFC 6749 3.3), or none")
        if form["dpop"] not in _DPOP:
            raise ConfigError(f"DPoP must be one of {', '.join(_DPOP)}")
        machine_like = existing.machine or existing.assertion_grant
        send = ID_TOKEN if form["send"] == ID_TOKEN else None
        if machine_like and form["client_id"] not in ("", existing.client_id):
            raise ConfigError(
                "this server's client comes with a secret or key: change it with "
                f"mcp-broker add {existing.url} --client-id ID (see mcp-broker add --help)"
            )
        wanted = ServerConfig(
            url=existing.url,
            client_id=form["client_id"] or None,
            provider=form["provider"] or "auto",
            callback_ports=existing.callback_ports,
            send_resource=existing.send_resource,
            scopes=tuple(scopes) or None,
            send=existing.send if machine_like else send,
            dpop=_DPOP[form["dpop"]],
            grant=existing.grant,
            client_auth=existing.client_auth,
            enterprise=existing.enterprise,
            workload_token_file=existing.workload_token_file,
        )
        saved = backend.add_server(replacing(existing, wanted))
    except BrokerError as exc:
        failed(exc)
        return _change_form(existing, **form)
    if not same_sign_in(existing, saved):
        note(
            "info",
            f"Saved {saved.display_name}. Its sign-in was for the old settings and is signed "
            "out: sign in again with its Sign in button.",
        )
    else:
        note("info", f"Saved {saved.display_name}.")
    return back("servers")
