"""The control page's views: Servers, Add a server, Clients, Connect an MCP client, Settings.

Each action is a POST form that redirects back to its page with a note saying what happened
(an error in the same words as the CLI's, :mod:`broker.errors`), except creating a named client:
its secret is shown once, on the page that answers that POST, and kept nowhere.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, cast

from flask import Blueprint, Response, g, make_response, redirect, render_template, request

from broker.api.audit import read_audit_log
from broker.api.clients import Decision
from broker.config import PROVIDERS, ServerConfig
from broker.desktop.menu import Action, Command, Overall, View, describe, server_state
from broker.errors import BrokerError, ConfigError, PkceNotSupported
from broker.safetext import safe_text
from broker.tokens.status import ServerStatus
from broker.ui.app import LANDING, current_session, page_context

launcher = Blueprint("launcher", __name__, url_prefix="/ui")
pages = Blueprint("pages", __name__, url_prefix="/ui/s/<key>")


@pages.url_value_preprocessor
def _pull_key(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """The session key from the path, for the session check (:mod:`broker.ui.app`)."""
    g.page_key = (values or {}).pop("key", None)


def base_path() -> str:
    return f"/ui/s/{current_session().key}"


#: RFC 6749 §3.3 scope-token (as ``mcp-broker login --scope`` checks it).
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
AUDIT_ROWS = 200
NAV = (
    ("servers", "Servers"),
    ("clients", "Clients"),
    ("connect", "Connect an MCP client"),
    ("settings", "Settings"),
)


def _page(template: str, active: str, status: int = 200, **values: Any) -> Response:
    session = current_session()
    body = render_template(
        template,
        nav=NAV,
        active=active,
        base=base_path(),
        csrf=session.csrf,
        notes=session.take_notes(),
        **values,
    )
    return make_response(body, status)


def _back(where: str) -> Response:
    return cast(Response, redirect(f"{base_path()}/{where}", code=303))


def _note(kind: str, text: str) -> None:
    current_session().note(kind, safe_text(text, 600))


def _failed(exc: BrokerError) -> None:
    _note("error", str(exc))


# -- launch -------------------------------------------------------------------------------------


@launcher.get("/launch")
def launch() -> Response:
    """Redeem a launch link: a session cookie, then on to the page it names. Answered with a
    page that moves on by itself (not a redirect): the link is opened from a local file, and a
    ``SameSite=Strict`` cookie is sent only on a navigation the page itself starts."""
    ctx = page_context()
    landing = ctx.launches.redeem(request.args.get("t", ""))
    if landing is None or not LANDING.fullmatch(landing):
        return make_response(render_template("closed.html", reason="used"), 403)
    cookie, session = ctx.sessions.open()
    landing = f"/ui/s/{session.key}/{landing.removeprefix('/ui/')}"
    response = make_response(render_template("launch.html", landing=landing))
    response.set_cookie(
        ctx.cookie_name, cookie, httponly=True, samesite="Strict", path="/ui/", secure=False
    )
    return response


@pages.post("/end")
def end() -> Response:
    ctx = page_context()
    ctx.sessions.end(request.cookies.get(ctx.cookie_name))
    response = make_response(render_template("closed.html", reason="ended"))
    response.delete_cookie(ctx.cookie_name, path="/ui/")
    return response


@pages.get("/")
def home() -> Response:
    return _back("servers")


# -- servers ------------------------------------------------------------------------------------


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
        _failed(exc)
        statuses = []
    rows = _rows(statuses, backend.view())
    notes = current_session().take_notes()
    # While a sign-in or sign-out runs (or was just asked for), the page reloads itself every
    # few seconds (a meta refresh: no script) until it shows the outcome.
    working = any(row.busy for row in rows) or any(kind == "pending" for kind, _ in notes)
    for kind, text in notes:
        current_session().note("info" if kind == "pending" else kind, text)
    return _page("servers.html", "servers", rows=rows, refresh=working)


@pages.post("/servers/action")
def server_action() -> Response:
    backend = page_context().backend
    url, action = request.form.get("url", ""), request.form.get("action", "")
    known = {status.url: status for status in backend.statuses()}
    if url not in known:
        _note("error", f"{url} is not configured; add it with: mcp-broker add {url}")
        return _back("servers")
    name = known[url].display_name
    if action == "sign_in":
        backend.post(Command(Action.SIGN_IN, url))
        _note("pending", f"Signing in to {name}: finish in the browser window that opened.")
    elif action == "more_scopes":
        scopes = request.form.get("scope", "").split()
        bad = [s for s in scopes if not _SCOPE_TOKEN.fullmatch(s)]
        if not scopes or bad:
            _note("error", "name one or more scopes, separated by spaces (RFC 6749 3.3)")
            return _back("servers")
        backend.post(Command(Action.SIGN_IN, url, scope=" ".join(scopes)))
        _note("pending", f"Signing in to {name} for {' '.join(scopes)}: finish in the browser.")
    elif action == "step_up":
        backend.post(Command(Action.STEP_UP, url))
        _note("pending", f"Signing in to {name} again: finish in the browser window that opened.")
    elif action == "sign_out":
        backend.post(Command(Action.SIGN_OUT, url))
        _note("pending", f"Signing out of {name}.")
    elif action == "confirm_remove":
        return _page("remove.html", "servers", url=url, name=name)
    elif action == "remove":
        try:
            result = backend.remove_server(url)
        except BrokerError as exc:
            _failed(exc)
        else:
            problem = f" ({result.problem})" if result.problem else ""
            _note("info", f"Removed {url}; its tokens are deleted{problem}.")
    else:
        _note("error", "unknown action")
    return _back("servers")


@pages.get("/servers/add")
def add_form() -> Response:
    return _page("add.html", "servers", providers=PROVIDERS, url="", provider="auto")


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
        _failed(exc)
        if provider == "auto":
            _note(
                "error",
                "If this is Amazon Cognito (it supports PKCE S256 without saying so), "
                "choose the Cognito profile and look it up again.",
            )
    except BrokerError as exc:
        _failed(exc)
    return _page("add.html", "servers", **values)


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
        _failed(exc)
        return _page("add.html", "servers", providers=PROVIDERS, url=url, provider="auto")
    _note("info", f"Added {saved.url}. Sign in with its Sign in button.")
    return _back("servers")


@pages.post("/servers/upload")
def add_from_outputs() -> Response:
    from broker.integrations.cloudformation import server_config_from_outputs
    from broker.paths import write_private_file

    backend = page_context().backend
    upload = request.files.get("outputs")
    url = request.form.get("url", "").strip() or None
    if upload is None or not upload.filename:
        _note("error", "choose the stack's outputs file (JSON from CloudFormation or Terraform)")
        return _back("servers/add")
    # The reader takes a path (as `add --from-cloudformation` does): a private file, then gone.
    path = backend.state_dir / f"outputs-{secrets.token_hex(8)}.json"
    try:
        write_private_file(path, upload.read())
        server = server_config_from_outputs(path, url)
        if backend.server(server.url) is not None:
            raise ConfigError(f"{server.url} is already configured; remove it first")
        saved = backend.add_server(server)
    except BrokerError as exc:  # named by the file the user chose, not the private copy
        _note("error", str(exc).replace(str(path), upload.filename))
        return _back("servers/add")
    finally:
        if path.exists():
            os.unlink(path)
    _note("info", f"Added {saved.url} from the stack's outputs. Sign in with its Sign in button.")
    return _back("servers")


# -- clients ------------------------------------------------------------------------------------


def _audit(filters: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for entry in read_audit_log(page_context().backend.clients.audit.path):
        if all(not want or str(entry.get(key, "")) == want for key, want in filters.items()):
            rows.append({k: safe_text(str(entry.get(k, "")), 300) for k in _AUDIT_KEYS})
    return rows[-AUDIT_ROWS:][::-1]


_AUDIT_KEYS = ("time", "client", "resource", "outcome", "count")


def _clients_page(status: int = 200, **values: Any) -> Response:
    backend = page_context().backend
    filters = {key: request.args.get(key, "").strip() for key in ("client", "resource", "outcome")}
    try:
        named = sorted(backend.clients.file.load().values(), key=lambda c: c.name)
    except BrokerError as exc:
        _failed(exc)
        named = []
    return _page(
        "clients.html",
        "clients",
        status,
        named=named,
        consents=backend.view().consents,
        servers=[s.url for s in backend.statuses()],
        audit=_audit(filters),
        filters=filters,
        **values,
    )


@pages.get("/clients")
def clients() -> Response:
    return _clients_page()


@pages.post("/clients/add")
def add_client() -> Response:
    backend = page_context().backend
    name = request.form.get("name", "").strip()
    resources = request.form.getlist("resource")
    try:
        secret = backend.clients.file.add(name, resources or None)
    except BrokerError as exc:
        _failed(exc)
        return _back("clients")
    # The one time the secret exists outside the client: this answer (never cached, no
    # referrer), nowhere else.
    return _clients_page(201, new_client=name, new_secret=secret)


@pages.post("/clients/remove")
def remove_client() -> Response:
    name = request.form.get("name", "")
    if page_context().backend.clients.file.remove(name):
        _note("info", f"Removed client {name}; its secret no longer works.")
    else:
        _note("error", f"no client named {name!r}")
    return _back("clients")


@pages.post("/clients/allow")
def allow_client() -> Response:
    name, url = request.form.get("name", ""), request.form.get("url", "")
    try:
        page_context().backend.clients.file.allow(name, url)
    except BrokerError as exc:
        _failed(exc)
    else:
        _note("info", f"{name} may now have tokens for {url}.")
    return _back("clients")


_DECISIONS = {d.value: d for d in Decision}
_DECIDED = {
    Decision.ALLOW_ONCE: "allowed once",
    Decision.ALLOW_ALWAYS: "always allowed",
    Decision.DENY: "denied",
}


@pages.post("/clients/consent")
def consent() -> Response:
    backend = page_context().backend
    client, resource = request.form.get("client", ""), request.form.get("resource", "")
    decision = _DECISIONS.get(request.form.get("decision", ""))
    asked = {(r.client, r.resource) for r in backend.view().consents}
    if decision is None or (client, resource) not in asked:
        _note("error", "that question is no longer waiting for an answer")
        return _back("clients")
    backend.post(Command(Action.CONSENT, resource, client, decision))
    _note("info", f"{client}: {_DECIDED[decision]} for {resource}.")
    return _back("clients")


# -- connect an MCP client ------------------------------------------------------------------------


@pages.get("/connect")
def connect() -> Response:
    backend = page_context().backend
    try:
        found = backend.mcp_clients()
    except (BrokerError, OSError) as exc:
        _note("error", f"cannot look for MCP clients: {exc}")
        found = []
    servers = [s.url for s in backend.statuses()]
    return _page("connect.html", "connect", found=found, servers=servers)


@pages.post("/connect")
def connect_one() -> Response:
    backend = page_context().backend
    name = request.form.get("client", "")
    if name not in {found.name for found in backend.mcp_clients()}:
        _note("error", f"{name} is not an MCP client found on this machine")
        return _back("connect")
    try:
        _note("info", backend.connect(name))
    except (BrokerError, OSError) as exc:
        _note("error", str(exc))
    return _back("connect")


# -- settings -----------------------------------------------------------------------------------


@pages.get("/settings")
def settings() -> Response:
    backend = page_context().backend
    try:
        start = backend.start_at_login()
    except (BrokerError, OSError) as exc:
        _note("error", f"cannot read the start-at-login state: {exc}")
        start = None
    return _page(
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
        _note("error", str(exc))
    else:
        _note("info", "The broker now starts at login." if enabled else "No longer at login.")
    return _back("settings")
