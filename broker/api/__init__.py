"""The local token API (DESIGN §3): a Flask app on waitress, served on 127.0.0.1 only.

``server`` starts it, ``app`` builds it from ``routes`` and ``token`` (which answer requests,
with ``context`` and ``responses``), ``clients`` holds the named clients and consent, ``audit``
the audit log, and ``endpoint`` is the client side (``endpoint.json`` and the
requests the helpers and the bridge send). This ``__init__`` imports nothing, so the client side
loads without Flask::

    api = start_api(broker, broker.paths, consent_prompt=..., on_interaction_required=...)
    api.url, api.port          # also published in endpoint.json with the default secret
    api.clients.decide(...)    # the tray's answer to a consent question
    api.close()                # stops waitress and every thread it started
"""
