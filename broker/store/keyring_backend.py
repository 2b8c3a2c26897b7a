"""Choosing a keyring backend, refusing unsafe ones, and turning its errors into ours.

The broker keeps tokens only in a real OS keyring (Secret Service, macOS Keychain, Windows
Credential Manager). keyring's ``fail`` backend (nothing found), its ``null`` backend (drops
everything) and the ``keyrings.alt`` file backends (plaintext or a file next to its key) are
refused with a message that says how to fix the machine, never silently replaced (SECURITY #46).

``keyring`` itself is imported only when a backend is needed: a token read that the Secret
Service answers directly (:mod:`broker.store.secret_service`) never loads it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from broker.errors import StorageError, StorageLocked, StorageUnavailable

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

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


SECRET_SERVICE = "keyring.backends.SecretService.Keyring"  # noqa: S105 (a class name)


def default_backend() -> KeyringBackend:
    """The backend a store uses when it is given none: keyring's configured one
    (``PYTHON_KEYRING_BACKEND``, a keyringrc, ``KEYRING_PROPERTY_*``, or the one this process
    set or detected already); with nothing configured, on a Linux (or BSD) desktop that is not
    KDE, keyring's Secret Service backend when a Secret Service answers on the session bus,
    which is what keyring's detection picks there; else keyring's detection.

    The detection imports every installed backend to ask it its priority (macOS's through
    ``ctypes``, libsecret's through PyGObject: about 130 ms a process); the Secret Service's own
    viability check, one D-Bus round trip, is all it needs to be chosen here. On KDE, keyring
    ranks KWallet above it, so there the detection decides.
    """
    import keyring

    if _keyring_decides():
        return keyring.get_keyring()
    from keyring.backends import SecretService

    try:
        SecretService.Keyring.priority  # noqa: B018  (raises unless a Secret Service answers)
    except Exception:
        return keyring.get_keyring()  # it will find none, or another: its own messages then
    backend: KeyringBackend = SecretService.Keyring()  # type: ignore[no-untyped-call]
    return backend


def reads_secret_service() -> bool:
    """Whether :func:`default_backend` is (or would be) keyring's Secret Service backend with its
    default settings, so that :mod:`broker.store.secret_service` reads exactly what it would.
    Decided without importing keyring: from its configuration and this process's backend."""
    current = _current_keyring()
    if current is not None:
        return (
            _qualified_name(current) == SECRET_SERVICE
            and getattr(current, "scheme", "default") == "default"
            and not hasattr(current, "preferred_collection")
        )
    if sys.platform in ("darwin", "win32") or _properties_configured() or _keyringrc_exists():
        return False
    named = os.environ.get("PYTHON_KEYRING_BACKEND")
    return named == SECRET_SERVICE if named is not None else not _kde_desktop()


def _keyring_decides() -> bool:
    """Whether keyring is configured, already chose in this process, or may rank another
    backend first on this desktop."""
    return (
        _current_keyring() is not None
        or "PYTHON_KEYRING_BACKEND" in os.environ
        or _properties_configured()
        or _keyringrc_exists()
        or sys.platform in ("darwin", "win32")
        or _kde_desktop()
    )


def _current_keyring() -> Any:
    """The backend keyring holds in this process (``set_keyring``, or detected), if any."""
    core = sys.modules.get("keyring.core")
    return getattr(core, "_keyring_backend", None) if core is not None else None


def _properties_configured() -> bool:
    return any(name.startswith("KEYRING_PROPERTY_") for name in os.environ)


def keyringrc_paths() -> list[Path]:
    """Where keyring looks for ``keyringrc.cfg`` on Linux and BSD: its config root and the old
    data root it still checks (``keyring.util.platform_``)."""
    home = Path.home()
    config = os.environ.get("XDG_CONFIG_HOME") or home / ".config"
    data = os.environ.get("XDG_DATA_HOME") or home / ".local" / "share"
    return [Path(root, "python_keyring", "keyringrc.cfg") for root in (config, data)]


def _keyringrc_exists() -> bool:
    return any(path.exists() for path in keyringrc_paths())


def _kde_desktop() -> bool:
    """keyring's KWallet backend ranks above the Secret Service on KDE (its priority 5.1)."""
    return "KDE" in os.environ.get("XDG_CURRENT_DESKTOP", "").split(":")


def _qualified_name(backend: object) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


def check_usable(backend: KeyringBackend) -> None:
    """Raise :class:`StorageUnavailable` unless ``backend`` keeps secrets in an OS keyring."""
    from keyring.backends import chainer

    if isinstance(backend, chainer.ChainerBackend):
        usable = [b for b in backend.backends if _refusal(b) is None]
        if not usable:
            raise StorageUnavailable(f"No usable OS keyring. {how_to_fix()}")
        return
    reason = _refusal(backend)
    if reason:
        raise StorageUnavailable(reason)


def _refusal(backend: KeyringBackend) -> str | None:
    from keyring.backends import fail, null

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
    except Exception as exc:
        raise _translate(exc) from None


def _translate(exc: Exception) -> StorageError:
    errors = sys.modules.get("keyring.errors")  # none of its errors without it loaded
    if errors is not None and isinstance(exc, errors.KeyringError):
        if isinstance(exc, errors.KeyringLocked):
            return StorageLocked(f"The keyring is locked ({exc}). Unlock it and retry.")
        if isinstance(exc, errors.NoKeyringError):
            return StorageUnavailable(f"No usable OS keyring. {how_to_fix()}")
        if isinstance(exc, errors.InitError):
            return StorageUnavailable(f"The keyring could not be opened ({exc}). {how_to_fix()}")
        return StorageError(f"The keyring refused the operation ({type(exc).__name__}).")
    return _translate_other(exc)


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
    return _qualified_name(backend)
