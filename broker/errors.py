"""Every error the broker raises, in one tree (add new classes here, under the right parent).

    BrokerError
    ├── ConfigError              bad or missing configuration (exit code 3)
    ├── StorageError             the token store cannot be used
    │   └── (store errors)
    ├── DiscoveryError           metadata could not be found or was refused
    ├── AuthorizationError       the sign-in failed or was refused
    │   └── InteractionRequired  the user must sign in (exit code 4)
    └── ServerUnreachable        a server could not be reached (exit code 5)
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base of every error the broker raises on purpose. Its message is safe to show."""

    exit_code = 1


class ConfigError(BrokerError):
    exit_code = 3


class StorageError(BrokerError):
    pass


class DiscoveryError(BrokerError):
    pass


class AuthorizationError(BrokerError):
    pass


class InteractionRequired(AuthorizationError):
    """No usable token and no way to get one without the user."""

    exit_code = 4


class ServerUnreachable(BrokerError):
    exit_code = 5
