"""The token core: "a valid access token for server X", from cache, keyring or a refresh.

``tokenset`` (what is kept), ``service`` (cache → store → single-flight refresh across threads and
processes), ``freshness`` (the refresh policy: when a token is due), ``refresher`` (the background
refresh), ``stamps`` (sign-in/sign-out news between processes), ``backoff``, ``auth_servers``
(validated authorization server metadata, reused for refreshes), ``clock``, ``dpop`` (DPoP-bound
tokens: when, the key kept with the tokens, proofs on token and MCP requests, RFC 9449).
"""
