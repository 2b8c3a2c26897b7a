"""A private D-Bus session bus for tests (the desktop and the Secret Service each run one).

The product's own: ``mcp-broker demo`` starts the same bus when a machine has no keyring.
"""

from __future__ import annotations

from broker.cli.demo_keyring import BUS_CONFIG, Spawn, start_session_bus

__all__ = ["BUS_CONFIG", "Spawn", "start_session_bus"]
