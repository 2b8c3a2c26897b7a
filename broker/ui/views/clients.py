"""Clients: the token API's named clients, the consent questions waiting, the audit log."""

from __future__ import annotations

from typing import Any

from flask import Response, request

from broker.api.audit import read_audit_log
from broker.api.clients import Decision
from broker.desktop.menu import Action, Command
from broker.errors import BrokerError
from broker.safetext import safe_text
from broker.ui.app import page_context
from broker.ui.views import back, failed, note, page, pages

AUDIT_ROWS = 200


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
        failed(exc)
        named = []
    return page(
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
        failed(exc)
        return back("clients")
    # The one time the secret exists outside the client: this answer (never cached, no
    # referrer), nowhere else.
    return _clients_page(201, new_client=name, new_secret=secret)


@pages.post("/clients/remove")
def remove_client() -> Response:
    name = request.form.get("name", "")
    if page_context().backend.clients.file.remove(name):
        note("info", f"Removed client {name}; its secret no longer works.")
    else:
        note("error", f"no client named {name!r}")
    return back("clients")


@pages.post("/clients/allow")
def allow_client() -> Response:
    name, url = request.form.get("name", ""), request.form.get("url", "")
    try:
        page_context().backend.clients.file.allow(name, url)
    except BrokerError as exc:
        failed(exc)
    else:
        note("info", f"{name} may now have tokens for {url}.")
    return back("clients")


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
        note("error", "that question is no longer waiting for an answer")
        return back("clients")
    backend.post(Command(Action.CONSENT, resource, client, decision))
    note("info", f"{client}: {_DECIDED[decision]} for {resource}.")
    return back("clients")
