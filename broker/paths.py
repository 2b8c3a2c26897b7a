"""Where the broker keeps its files, and how it writes the ones that hold secrets.

Every path comes from platformdirs, unless ``MCP_BROKER_HOME=<dir>`` is set: then config, state,
locks and logs all live under that one directory (tests and scripts rely on it)::

    <home>/config.toml    <home>/state/endpoint.json    <home>/state/audit.log
    <home>/locks/         <home>/logs/

Directories that hold secrets or locks are created 0700 and refused when another user could write
to them; so are a config file and the broker's home that another user owns or could write
(:func:`ensure_safe_config`). Secret files are written atomically, mode 0600
(:func:`write_private_file`); every other file the broker writes is opened without following
symlinks (:func:`open_private`).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from broker.errors import UnsafePathError

logger = logging.getLogger(__name__)

APP_NAME = "mcp-oauth-broker"
HOME_ENV = "MCP_BROKER_HOME"
_POSIX = os.name == "posix"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


# A named tuple, not a dataclass: ``dataclasses`` imports ``inspect`` and ``ast``, a tenth of the
# start-up of ``mcp-broker headers``, which needs these paths and little else.
class BrokerPaths(NamedTuple):
    config_file: Path
    state_dir: Path
    lock_dir: Path
    log_dir: Path

    @property
    def endpoint_file(self) -> Path:
        """Discovery file of the local token API (DESIGN §3)."""
        return self.state_dir / "endpoint.json"

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.log"

    def ensure_private_dirs(self) -> BrokerPaths:
        """Create the state and lock dirs (0700) and refuse them if others can write to them."""
        ensure_private_dir(self.state_dir)
        ensure_private_dir(self.lock_dir)
        return self


def broker_paths(environ: Mapping[str, str] | None = None) -> BrokerPaths:
    """The broker's paths; ``MCP_BROKER_HOME`` overrides every one of them. Creates nothing."""
    env = os.environ if environ is None else environ
    home = env.get(HOME_ENV)
    if home:
        root = Path(home).expanduser().absolute()
        return BrokerPaths(root / "config.toml", root / "state", root / "locks", root / "logs")
    import platformdirs  # only without MCP_BROKER_HOME: per-use helpers start faster without it

    dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
    state = dirs.user_state_path
    return BrokerPaths(
        dirs.user_config_path / "config.toml", state, state / "locks", dirs.user_log_path
    )


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700; refuse a dir another user could write to."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _POSIX:
        return path  # NTFS ACLs of the user profile already keep other users out.
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafePathError(f"{path} is not a plain directory; remove it and retry")
    refuse_if_others_can_write(path, info, "chmod 700", "to keep secrets there")
    if stat.S_IMODE(info.st_mode) != 0o700:
        # Readable-by-others is not an attack path into the dir, but secrets do not belong there.
        logger.info("Tightening %s to mode 700", path)
        os.chmod(path, 0o700)
    return path


def ensure_safe_config(config_file: Path) -> None:
    """Refuse a config file, or the directory holding it (the broker's home), that another user
    owns or could write: whoever writes the config chooses the servers and authorization
    servers the broker trusts. A missing file or directory is fine (nothing to trust yet)."""
    if not _POSIX:
        return
    for path, fix in ((config_file.parent, "chmod go-w"), (config_file, "chmod 600")):
        try:
            info = path.stat()  # a config symlinked from a dotfiles repo is judged by its target
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UnsafePathError(f"{path}: cannot be checked ({exc.strerror})") from None
        refuse_if_others_can_write(path, info, fix, "as the broker's configuration")


def refuse_if_others_can_write(path: Path, info: os.stat_result, fix: str, purpose: str) -> None:
    """:class:`UnsafePathError`, with the command that fixes it, when ``path`` belongs to another
    user or its group or others may write to it."""
    if info.st_uid != os.geteuid():
        raise UnsafePathError(
            f"{path} belongs to another user (uid {info.st_uid}); refusing to use it "
            f"{purpose}. Fix it with: sudo chown {_user_name()} {path}"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafePathError(
            f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):o}); refusing "
            f"to use it {purpose}. Fix it with: {fix} {path}"
        )


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def open_private(path: Path, flags: int) -> int:
    """``os.open`` for a file the broker writes (or a secret it reads): never through a symlink
    (a link planted in its directory must not send a write elsewhere), created 0600, and only a
    regular file. Raises :class:`OSError` otherwise."""
    fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def write_private_file(path: Path, data: bytes | str) -> None:
    """Atomically replace ``path`` with ``data``, mode 0600: a reader sees the old or new file.

    The temp file lives in the same dir (so ``os.replace`` is atomic) and is fsynced first.
    """
    import tempfile  # writers only: per-use helpers that only read start faster without it

    payload = data.encode() if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            if _POSIX:
                os.fchmod(tmp.fileno(), 0o600)  # mkstemp already uses 0600; be explicit.
            tmp.write(payload)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable (POSIX only; Windows cannot open a directory)."""
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
