"""Choosing a keyring backend, refusing unsafe ones, and turning its errors into ours.

The broker keeps tokens only in a real OS keyring (Secret Service, macOS Keychain, Windows
Credential Manager). keyring's ``fail`` backend (nothing found), its ``null`` backend (drops
everything) and the ``keyrings.alt`` file backends (plaintext or a file next to its key) are
refused with a message that says how to fix the machine, never silently replaced (SECURITY #46).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import keyring
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null

from broker.errors import StorageError, StorageLocked, StorageUnavailable

T = TypeVar("T")

NEVER_PLAINTEXT = "The broker never falls back to storing tokens in a plain file."


def how_to_fix() -> str:
    """What a user on this OS must do so that keyring finds a usable backend."""
    if sys.platform == "darwin":
        fix = "Run the broker in a logged-in macOS session so it can reach the login Keychain."
    elif sys.platform == "win32":
        fix = "Run the broker as a logged-in Windows user so it can reach the Credential Manager."
    else:
        bus = "set" if os.environ.get("DBUS_SESSION_BUS_ADDRESS") else "not set"
        fix = (
            "No Secret Service answers on the session D-Bus "
            f"(DBUS_SESSION_BUS_ADDRESS is {bus}). Start one in your desktop session, e.g. "
            "`gnome-keyring-daemon --start --components=secrets` (Debian/Ubuntu: "
            "`apt install gnome-keyring`), or enable KeePassXC's Secret Service integration, "
            "then restart the broker. `python -m keyring --list-backends` shows what keyring sees."
        )
    return f"{fix} {NEVER_PLAINTEXT}"


def default_backend() -> KeyringBackend:
    """keyring's configured backend (``PYTHON_KEYRING_BACKEND``, keyringrc, or detection)."""
    return keyring.get_keyring()


def check_usable(backend: KeyringBackend) -> None:
    """Raise :class:`StorageUnavailable` unless ``backend`` keeps secrets in an OS keyring."""
    if isinstance(backend, chainer.ChainerBackend):
        usable = [b for b in backend.backends if _refusal(b) is None]
        if not usable:
            raise StorageUnavailable(f"No usable OS keyring. {how_to_fix()}")
        return
    reason = _refusal(backend)
    if reason:
        raise StorageUnavailable(reason)


def _refusal(backend: KeyringBackend) -> str | None:
    if isinstance(backend, fail.Keyring):
        return f"No usable OS keyring. {how_to_fix()}"
    if isinstance(backend, null.Keyring):
        return (
            "keyring is configured with its null backend, which discards secrets. Remove "
            f"PYTHON_KEYRING_BACKEND or the keyringrc setting. {how_to_fix()}"
        )
    if type(backend).__module__.startswith("keyrings.alt"):
        return (
            f"keyring chose {type(backend).__module__}.{type(backend).__name__} from keyrings.alt, "
            "which keeps secrets in files. Uninstall keyrings.alt or set PYTHON_KEYRING_BACKEND "
            f"to an OS keyring. {how_to_fix()}"
        )
    return None


def translated(fn: Callable[[], T]) -> T:
    """Run ``fn`` and map keyring / Secret Service failures onto the broker's store errors.

    Messages carry the library's own text or an exception type, never a stored value.
    """
    try:
        return fn()
    except StorageError:
        raise
    except keyring.errors.KeyringLocked as exc:
        raise StorageLocked(f"The keyring is locked ({exc}). Unlock it and retry.") from None
    except keyring.errors.NoKeyringError:
        raise StorageUnavailable(f"No usable OS keyring. {how_to_fix()}") from None
    except keyring.errors.InitError as exc:
        raise StorageUnavailable(
            f"The keyring could not be opened ({exc}). {how_to_fix()}"
        ) from None
    except keyring.errors.KeyringError as exc:
        raise StorageError(f"The keyring refused the operation ({type(exc).__name__}).") from None
    except Exception as exc:
        raise _translate_other(exc) from None


def _translate_other(exc: Exception) -> StorageError:
    name = secretstorage_error(exc)
    dbus_error = str(getattr(exc, "name", ""))
    if name in {"LockedException", "PromptDismissedException"} or dbus_error.endswith(".IsLocked"):
        return StorageLocked("The keyring is locked or its unlock prompt was dismissed. Retry.")
    if name is not None or isinstance(exc, OSError | EOFError):
        return StorageUnavailable(
            f"The keyring is unreachable ({type(exc).__name__}). {how_to_fix()}"
        )
    return StorageError(f"The keyring call failed ({type(exc).__name__}).")


def secretstorage_error(exc: BaseException) -> str | None:
    """The secretstorage/jeepney exception class name, without importing them on other OSes."""
    module = type(exc).__module__
    return type(exc).__name__ if module.startswith(("secretstorage", "jeepney")) else None


def backend_name(backend: Any) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"
