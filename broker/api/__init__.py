"""The local token API (DESIGN §3): a Flask app on waitress, served on 127.0.0.1 only.

api = start_api(broker, broker.paths, consent_prompt=..., on_interaction_required=...)
api.url, api.port          # also published in endpoint.json with the default secret
api.clients.decide(...)    # the tray's answer to a consent question
api.close()                # stops waitress and every thread it started
"""

from broker.api.app import create_app
from broker.api.server import ApiServer, ApiSettings, start_api

__all__ = ["ApiServer", "ApiSettings", "create_app", "start_api"]
