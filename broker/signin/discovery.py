"""Discovery over the network: the HTTP edge for :mod:`broker.oauth.discovery`.

Every request goes through the sender it is given (a :class:`broker.net.limited_http.
LimitedSender` in the broker), so no metadata response can be too big or too slow.
"""

from __future__ import annotations

import logging

from broker.net.limited_http import Sender
from broker.oauth import discovery as steps
from broker.oauth.discovery import Discovered
from broker.oauth.www_authenticate import BearerChallenge

__all__ = ["Sender", "discover"]

logger = logging.getLogger(__name__)


def discover(
    server_url: str,
    send: Sender,
    challenge: BearerChallenge | None = None,
    profile: str | None = None,
) -> Discovered:
    """PRM, then authorization server metadata, for ``server_url`` (see :mod:`broker.oauth`)."""
    found = steps.drive(steps.discover(server_url, challenge, profile), send)
    logger.info("%s signs in at %s", found.server_url, found.issuer)
    return found
