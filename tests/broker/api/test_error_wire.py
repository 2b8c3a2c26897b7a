"""One error tree (broker/errors.py): each class says how the token API answers with it, and the
client side maps the answer back to the same class. The ``token``/``headers`` helpers exit with
the same code whether the running broker's API or the library answered."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import errors
from broker.api.endpoint import _error_for
from broker.api.responses import error_parts
from broker.cli import main
from broker.errors import (
    BrokerError,
    InsufficientScope,
    InteractionRequired,
    InvalidGrant,
    ServerUnreachable,
    StorageLocked,
    as_answered,
)
from tests.broker.api.conftest import Api
from tests.broker.api.fakes import SERVER_A


def _tree(cls: type[BrokerError] = BrokerError) -> Iterator[type[BrokerError]]:
    yield cls
    for sub in cls.__subclasses__():
        if sub.__module__ == "broker.errors":
            yield from _tree(sub)


ANSWER_CLASSES = sorted(set(errors._ANSWERS.values()), key=lambda cls: cls.__name__)


def _through_the_wire(exc: BrokerError) -> BrokerError:
    """The API's answer with ``exc`` (the function every error response is made by), read back
    by the client side's mapping."""
    status_line, _, body = error_parts(exc)
    return _error_for(int(status_line.split()[0]), json.loads(body))


def test_the_tree_marks_at_least_the_answers_clients_act_on() -> None:
    named = {cls.__name__ for cls in ANSWER_CLASSES}
    assert {"InteractionRequired", "ConsentRequired", "ClientNotAllowed", "InsufficientScope"} <= (
        named
    )
    assert {"ConfigError", "ServerUnreachable", "InvalidClient", "ApiServerError"} <= named


@pytest.mark.parametrize("cls", ANSWER_CLASSES, ids=lambda cls: cls.__name__)
def test_every_answer_maps_to_the_wire_and_back_to_the_same_class(cls: type[BrokerError]) -> None:
    sent = cls(f"what {cls.__name__} says")
    back = _through_the_wire(sent)

    assert type(back) is cls
    assert str(back) == str(sent)
    assert back.exit_code == sent.exit_code


@pytest.mark.parametrize("cls", list(_tree()), ids=lambda cls: cls.__name__)
def test_every_error_is_answered_with_an_answer_the_client_side_knows(
    cls: type[BrokerError],
) -> None:
    answer_class = errors._ANSWERS[(cls.http_status, cls.wire_error)]
    back = _through_the_wire(cls("a message"))

    assert type(back) is answer_class and str(back) == "a message"
    assert type(as_answered(cls("a message"))) is answer_class  # what the helpers raise


@pytest.mark.parametrize(
    ("cls", "answer_class"),
    [
        (errors.AuthorizationError, InteractionRequired),
        (InvalidGrant, InteractionRequired),
        (errors.SignInTimeout, InteractionRequired),
        (errors.ConsentRequired, errors.ConsentRequired),
        (errors.UnsafePathError, errors.ConfigError),
        (StorageLocked, ServerUnreachable),
        (errors.DiscoveryError, ServerUnreachable),
        (errors.StaleEndpoint, ServerUnreachable),
        (errors.LocalApiError, errors.InvalidRequest),
    ],
)
def test_what_the_api_has_always_answered(
    cls: type[BrokerError], answer_class: type[BrokerError]
) -> None:
    assert type(_through_the_wire(cls("a message"))) is answer_class


def test_an_answer_outside_the_tree_is_a_local_api_error_naming_it() -> None:
    back = _error_for(418, {"error": "teapot", "error_description": "short and stout"})
    assert type(back) is errors.LocalApiError
    assert str(back) == "the broker refused: teapot: short and stout"


def test_the_answer_headers_come_from_the_class() -> None:
    _, locked, _ = error_parts(StorageLocked("the keyring is locked"))
    _, busy, _ = error_parts(errors.ApiBusy("busy"))
    _, wrong, _ = error_parts(errors.InvalidClient("unknown client secret", presented=True))

    assert ("Retry-After", "5") in locked and ("Retry-After", "1") in busy
    assert ("WWW-Authenticate", 'Bearer realm="mcp-broker", error="invalid_token"') in wrong


# -- the helpers' exit codes ---------------------------------------------------------------------


class FailingLibrary:
    def __init__(self, failure: BrokerError) -> None:
        self.failure = failure

    def token(self, url: str, min_valid: float | None = None) -> object:
        raise self.failure

    def close(self) -> None:
        pass


FAILURES = [
    pytest.param(StorageLocked("the keyring is locked; unlock it"), 5, id="keyring-locked"),
    pytest.param(InvalidGrant("the refresh was refused", "invalid_grant", 400), 4, id="grant"),
    pytest.param(InsufficientScope("lacks mcp/admin"), 1, id="insufficient-scope"),
    pytest.param(InteractionRequired("not signed in"), 4, id="not-signed-in"),
]


def _exit_code(argv: list[str], library: FailingLibrary) -> tuple[int, str]:
    logging.getLogger().handlers.clear()
    out = io.StringIO()
    return main(argv, broker_factory=lambda args: library, out=out), out.getvalue()


@pytest.mark.integration
@pytest.mark.parametrize(("failure", "expected"), FAILURES)
@pytest.mark.parametrize("command", ["token", "headers"])
def test_the_helpers_exit_alike_through_the_api_and_the_library(
    api: Api,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: BrokerError,
    expected: int,
    command: str,
) -> None:
    monkeypatch.setenv("MCP_BROKER_HOME", str(api.paths.state_dir.parent))
    api.provider.failures[SERVER_A] = failure
    library = FailingLibrary(failure)

    through_api = _exit_code([command, SERVER_A], library)  # the running broker answers
    # --config goes to the library (the running broker serves its own configuration)
    through_library = _exit_code(["--config", str(tmp_path / "c.toml"), command, SERVER_A], library)

    assert api.provider.calls_for(SERVER_A) == 1  # the first run did ask the API
    assert through_api == through_library == (expected, "")
