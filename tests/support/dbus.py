"""A private D-Bus session bus for tests (the desktop and the Secret Service each run one)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={socket_dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

Spawn = Callable[..., subprocess.Popen[bytes]]


def start_session_bus(config_dir: Path, spawn: Spawn, prefix: str = "bus-") -> tuple[str, str]:
    """Start ``dbus-daemon`` with ``spawn`` (which owns the process); returns its address and
    the socket dir, a short one of its own (unix socket paths are limited to ~100 characters),
    for the caller to remove after stopping the daemon."""
    socket_dir = tempfile.mkdtemp(prefix=prefix)
    config = config_dir / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket_dir=socket_dir))
    bus = spawn(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
    )
    assert bus.stdout is not None
    address = bus.stdout.readline().decode().strip()
    bus.stdout.close()  # it prints nothing more
    if not address:
        raise RuntimeError("dbus-daemon did not print its address")
    return address, socket_dir
