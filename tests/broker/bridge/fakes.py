"""A token source for tests: hands out known tokens and records what it was asked."""

from __future__ import annotations

from broker.errors import BrokerError


class FakeTokens:
    resource = "http://127.0.0.1:1/mcp"

    def __init__(self, tokens: list[str] | None = None) -> None:
        self.tokens = list(tokens or ["t1"])
        self.current = 0
        self.fail: BrokerError | None = None
        self.renew_to: str | None = None
        self.step_up_to: str | None = None
        self.calls: list[tuple[str, ...]] = []

    def rotate(self) -> None:
        self.current += 1

    def token(self) -> str:
        self.calls.append(("token",))
        if self.fail is not None:
            raise self.fail
        return self.tokens[self.current]

    def renewed(self, refused: str) -> str:
        self.calls.append(("renewed", refused))
        if self.renew_to is None:
            raise BrokerError("no renewal in this test")
        return self.renew_to

    def stepped_up(self, refused: str, challenged_scope: str | None) -> str:
        self.calls.append(("stepped_up", refused, challenged_scope or ""))
        if self.step_up_to is None:
            raise BrokerError("no step-up in this test")
        return self.step_up_to

    def close(self) -> None:
        self.calls.append(("close",))
