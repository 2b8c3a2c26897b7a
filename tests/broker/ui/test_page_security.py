"""The control page's defences, each against the running listener (real waitress on
127.0.0.1): the launch link, the session cookie, exact Host, Origin and CSRF on every change,
the CSP, and that no server token, refresh token or client secret ever reaches a page. Each
attack asserts the refusal and that nothing leaked (no server data, no cookie, no change)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx2
import pytest

from broker.api.clients import ClientsFile
from tests.broker.ui.conftest import SERVER, USER, Page
from tests.support.canaries import files_under, leaks

pytestmark = pytest.mark.integration

PAGES = ("servers", "servers/add", "clients", "connect", "settings")


def named_clients(page: Page) -> set[str]:
    return set(ClientsFile(page.paths.state_dir, page.paths.lock_dir).load())


def assert_refused_without_leak(page: Page, answer: httpx2.Response, status: int = 403) -> None:
    assert answer.status_code == status, answer.text
    assert SERVER not in answer.text and USER not in answer.text
    assert "set-cookie" not in answer.headers
    assert not [h for h in answer.headers if h.lower().startswith("access-control-")]
    assert leaks(page.canaries(), {"answer": answer.text}) == []


# -- the launch link ------------------------------------------------------------------------------


def test_open_gets_a_private_launch_file_from_the_broker_and_never_the_token(page: Page) -> None:
    answer = page.launch_file()

    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    path = Path(unquote(urlsplit(answer.json()["file"]).path))
    assert path.parent == page.paths.state_dir
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = re.search(r"/ui/launch\?t=([A-Za-z0-9_-]{40,})", path.read_text())
    assert token is not None
    assert token.group(1) not in answer.text  # the CLI (and its terminal) never sees it


def test_only_the_default_client_may_open_the_page(page: Page) -> None:
    secret = ClientsFile(page.paths.state_dir, page.paths.lock_dir).add("tool", None)

    named = page.launch_file(secret)
    nobody = page.http.post("/v1/ui/launch", json={}, headers={"X-MCP-Broker": "1"})
    browser = page.http.post(
        "/v1/ui/launch",
        json={},
        headers={
            "X-MCP-Broker": "1",
            "Authorization": f"Bearer {page.api_secret}",
            "Origin": page.origin,
        },
    )

    assert named.status_code == 403 and named.json()["error"] == "access_denied"
    assert nobody.status_code == 401
    assert browser.status_code == 403  # the token API's own guards: no browser, ever
    assert page.page.launch_files() == []  # none was written


def test_a_launch_link_opens_one_session_with_a_strict_cookie(page: Page) -> None:
    link = page.launch_link()

    first = page.http.get(link)

    assert first.status_code == 200
    (cookie,) = first.headers.get_list("set-cookie")
    attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")}
    assert {"httponly", "path", "samesite"} <= set(attributes)
    assert attributes["samesite"].strip() == "SameSite=Strict"
    assert attributes["path"].strip() == "Path=/ui/"
    assert "secure" not in attributes and "domain" not in attributes
    (base,) = re.findall(r'url=(/ui/s/[A-Za-z0-9_-]{32,})/servers"', first.text)
    session = first.cookies[page.cookie_name]
    assert page.get(f"{base}/servers", session).status_code == 200


def test_a_replayed_launch_link_is_refused(page: Page) -> None:
    link = page.launch_link()
    assert page.http.get(link).status_code == 200

    replayed = page.http.get(link)

    assert_refused_without_leak(page, replayed)
    assert "already used" in replayed.text


def test_a_guessed_or_empty_launch_token_is_refused(page: Page) -> None:
    for query in ("?t=" + "A" * 43, "?t=", ""):
        assert_refused_without_leak(page, page.http.get("/ui/launch" + query))


# -- the session ------------------------------------------------------------------------------


def test_without_the_session_cookie_no_page_is_shown(page: Page) -> None:
    _, _, base = page.session()  # the session's path alone (as in the browser's history)
    for path in PAGES:
        assert_refused_without_leak(page, page.get(f"{base}/{path}", None), 401)
        assert_refused_without_leak(page, page.get(f"{base}/{path}", "not-a-session"), 401)
        assert_refused_without_leak(page, page.get(f"/ui/{path}", None), 401)


def test_the_cookie_alone_opens_no_page(page: Page) -> None:
    """Browsers send a 127.0.0.1 cookie to every port: a server on another port that the
    browser visits under /ui/ receives it. Without the session's path it opens nothing, even
    sent with every header right."""
    cookie, csrf, base = page.session()
    _, _, other = page.session()
    for prefix in ("/ui", "/ui/s/x", other, base[:-1]):
        for path in PAGES:
            assert_refused_without_leak(page, page.get(f"{prefix}/{path}", cookie), 401)
        posted = page.post(f"{prefix}/clients/add", cookie, {"csrf": csrf, "name": "stolen"})
        assert_refused_without_leak(page, posted, 401)
    assert named_clients(page) == set()
    assert page.get(f"{base}/servers", cookie).status_code == 200


def test_the_token_api_secret_does_not_open_the_page(page: Page) -> None:
    _, _, base = page.session()
    secret = ClientsFile(page.paths.state_dir, page.paths.lock_dir).add("tool", None)
    for bearer in (page.api_secret, secret):
        answer = page.http.get(f"{base}/servers", headers={"Authorization": f"Bearer {bearer}"})
        assert_refused_without_leak(page, answer, 401)
        as_cookie = page.get(f"{base}/servers", bearer)
        assert_refused_without_leak(page, as_cookie, 401)


def test_the_page_cookie_does_not_open_the_token_api(page: Page) -> None:
    cookie, _, _ = page.session()
    headers = {"X-MCP-Broker": "1", "Cookie": f"{page.cookie_name}={cookie}"}

    token = page.http.post("/v1/token", json={"resource": SERVER}, headers=headers)
    status = page.http.get("/v1/status", headers=headers)
    launch = page.http.post("/v1/ui/launch", json={}, headers=headers)
    as_bearer = page.http.post(
        "/v1/token",
        json={"resource": SERVER},
        headers={"X-MCP-Broker": "1", "Authorization": f"Bearer {cookie}"},
    )

    for answer in (token, status, launch, as_bearer):
        assert answer.status_code == 401, answer.text
        assert leaks(page.canaries(), {"answer": answer.text}) == []
        assert SERVER not in answer.text


def test_an_ended_session_opens_nothing(page: Page) -> None:
    cookie, csrf, base = page.session()

    assert page.post(f"{base}/end", cookie, {"csrf": csrf}).status_code == 200

    assert_refused_without_leak(page, page.get(f"{base}/servers", cookie), 401)


# -- attacks from web pages --------------------------------------------------------------------


def test_a_dns_rebinding_host_is_refused(page: Page) -> None:
    cookie, csrf, base = page.session()
    for host in (
        f"attacker.example:{page.port}",
        f"localhost:{page.port}",
        f"127.0.0.1.:{page.port}",
        "127.0.0.1",
        f"127.0.0.1:{page.port + 1}",
        "",
    ):
        answer = page.get(f"{base}/servers", cookie, Host=host)
        assert_refused_without_leak(page, answer)
        form = {"csrf": csrf, "name": "rebound"}
        posted = page.post(f"{base}/clients/add", cookie, form, Host=host, Origin=f"http://{host}")
        assert_refused_without_leak(page, posted)
        assert_refused_without_leak(page, page.http.get(page.launch_link(), headers={"Host": host}))
    assert named_clients(page) == set()


def test_a_cross_site_form_post_is_refused(page: Page) -> None:
    cookie, csrf, base = page.session()
    for origin in ("https://evil.example", "null", f"http://localhost:{page.port}", ""):
        for token in (csrf, ""):
            answer = page.post(
                f"{base}/clients/add", cookie, {"csrf": token, "name": "evil"}, Origin=origin
            )
            assert_refused_without_leak(page, answer)
    fetch_meta = {"Sec-Fetch-Site": "cross-site"}
    cross_site = page.post(
        f"{base}/clients/add", cookie, {"csrf": csrf, "name": "evil"}, **fetch_meta
    )
    assert_refused_without_leak(page, cross_site)
    assert named_clients(page) == set()


def test_a_change_without_the_pages_csrf_token_is_refused(page: Page) -> None:
    cookie, csrf, base = page.session()
    _, other_sessions_csrf, _ = page.session()
    for token in ("", "x", other_sessions_csrf, csrf[:-1]):
        answer = page.post(f"{base}/clients/add", cookie, {"csrf": token, "name": "evil"})
        assert_refused_without_leak(page, answer)
    assert named_clients(page) == set()
    accepted = page.post(f"{base}/clients/add", cookie, {"csrf": csrf, "name": "mine"})
    assert accepted.status_code == 201 and named_clients(page) == {"mine"}


def test_a_stolen_cookie_used_from_another_port_is_refused(page: Page) -> None:
    """A page on another port of 127.0.0.1 is same-site: the browser sends the cookie along,
    SameSite=Strict or not. Its requests say where they come from, and are refused."""
    cookie, csrf, base = page.session()
    other = f"http://127.0.0.1:{page.port + 1}"

    read = page.get(f"{base}/clients", cookie, **{"Sec-Fetch-Site": "same-site"})
    framed = page.get(f"{base}/servers", cookie, **{"Sec-Fetch-Dest": "iframe"})
    posted = page.post(
        f"{base}/clients/add",
        cookie,
        {"csrf": csrf, "name": "stolen"},
        Origin=other,
        **{"Sec-Fetch-Site": "same-site"},
    )

    for answer in (read, framed, posted):
        assert_refused_without_leak(page, answer)
    assert csrf not in read.text
    assert named_clients(page) == set()


def test_preflights_and_relayed_requests_are_refused(page: Page) -> None:
    cookie, _, base = page.session()
    preflight = page.http.request(
        "OPTIONS",
        "/ui/clients/add",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert_refused_without_leak(page, preflight)
    for header in ("Forwarded", "X-Forwarded-For", "Via"):
        assert_refused_without_leak(
            page, page.get(f"{base}/servers", cookie, **{header: "1.2.3.4"})
        )


# -- what every page says and does not say ---------------------------------------------------


def test_every_page_has_a_strict_csp_and_no_script(page: Page) -> None:
    cookie, _, base = page.session()
    for path in (*[f"{base}/{p}" for p in PAGES], "/ui/launch", f"{base}/nowhere", "/ui/x"):
        answer = page.get(path, cookie)
        csp = answer.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "script-src" not in csp
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Referrer-Policy"] == "same-origin"
        assert "<script" not in answer.text.lower() and " on" + "click" not in answer.text
    assert page.get(f"{base}/servers", cookie).status_code == 200


def test_no_token_or_secret_of_a_server_ever_appears_in_a_page(page: Page) -> None:
    cookie, _, base = page.session()
    shown = {path: page.get(f"{base}/{path}", cookie).text for path in PAGES}

    assert USER in shown["servers"] and SERVER in shown["servers"]  # the page works
    assert leaks(page.canaries(), shown) == []


def test_a_new_clients_secret_is_shown_once_on_the_page_that_created_it(page: Page) -> None:
    cookie, csrf, base = page.session()

    created = page.post(f"{base}/clients/add", cookie, {"csrf": csrf, "name": "cursor-agent"})

    assert created.status_code == 201
    (secret,) = re.findall(r'class="secret-value"[^>]*value="(mcpb_[^"]+)"', created.text)
    again = page.get(f"{base}/clients", cookie)
    assert "cursor-agent" in again.text and secret not in again.text
    shown = {path: page.get(f"{base}/{path}", cookie).text for path in PAGES}
    assert leaks([secret, *page.canaries()], shown) == []
    files = files_under(page.paths.state_dir.parent)  # endpoint.json holds the API's secret
    assert leaks([secret, *page.canaries()[:3]], files) == []
    works = page.http.post(
        "/v1/token",
        json={"resource": SERVER},
        headers={"X-MCP-Broker": "1", "Authorization": f"Bearer {secret}"},
    )
    assert works.json()["error"] == "consent_required"  # the secret is the client's


def test_each_open_gets_its_own_launch_file_and_none_outlives_the_broker(page: Page) -> None:
    first, second = page.launch_file().json()["file"], page.launch_file().json()["file"]

    assert first != second and len(page.page.launch_files()) == 2
    old = Path(unquote(urlsplit(first).path))
    os.utime(old, (old.stat().st_atime - 120, old.stat().st_mtime - 120))  # its minute is over
    page.launch_file()
    assert len(page.page.launch_files()) == 2 and not old.exists()  # gone at the next launch
    page.page.close()
    assert page.page.launch_files() == []


def page_post_routes(page: Page) -> list[str]:
    """The path (under a session's base) of every route of the page that takes a POST."""
    from broker.ui.app import create_page_app

    backend = page.page._make_backend(page.api.clients)
    app = create_page_app(backend, page.page.launches, page.page.sessions, port=page.port)
    prefix = "/ui/s/<key>/"
    return sorted(
        rule.rule.removeprefix(prefix)
        for rule in app.url_map.iter_rules()
        if "POST" in (rule.methods or ()) and rule.rule.startswith(prefix)
    )


def test_every_change_the_page_can_make_needs_its_csrf_token_and_origin(page: Page) -> None:
    cookie, csrf, base = page.session()
    routes = page_post_routes(page)
    config_before = page.paths.config_file.read_bytes()
    assert {"servers/change", "servers/action", "clients/add"} <= set(routes)  # found them all
    form = {"url": SERVER, "action": "remove", "name": "evil", "client_id": "evil"}

    for route in routes:  # a missing, wrong or foreign CSRF token or Origin, or none at all
        for csrf_sent, origin in (
            ("", page.origin),
            ("x", page.origin),
            (csrf, "https://evil.example"),
            (csrf, ""),
        ):
            answer = page.post(
                f"{base}/{route}", cookie, {**form, "csrf": csrf_sent}, Origin=origin
            )
            assert_refused_without_leak(page, answer)

    assert page.paths.config_file.read_bytes() == config_before  # nothing changed
    assert named_clients(page) == set()
