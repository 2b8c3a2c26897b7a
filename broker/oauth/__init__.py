"""The OAuth protocol core: builds requests and judges responses, never touches a socket.

One module per concern, each citing its spec:

- ``www_authenticate``  RFC 6750 §3 / RFC 9728 §5.1 challenges
- ``resource``          RFC 8707 canonical resource URIs
- ``endpoints``         which endpoint URLs are safe to use (SECURITY #38)
- ``prm``               RFC 9728 Protected Resource Metadata
- ``as_metadata``       RFC 8414 / OIDC Discovery authorization server metadata
- ``providers``         provider profiles (``cognito``)
- ``discovery``         the discovery steps as a generator of requests
- ``scopes``            MCP scope selection, step-up, ``offline_access``
- ``pkce``              RFC 7636 verifier/challenge and ``state``
- ``registration``      client registration choice, RFC 7591 DCR, CIMD
- ``authorize``         the authorization request URL (RFC 6749 §4.1.1)
- ``callback_params``   the authorization response (RFC 6749 §4.1.2, RFC 9207)
- ``paste``             a pasted callback address (``login --no-browser``), judged as delivered
- ``device``            the device authorization grant and its polling policy (RFC 8628)
- ``client_assertion``  ``private_key_jwt`` client authentication (RFC 7523 §2.2)
- ``dpop``              DPoP proofs and nonce answers (RFC 9449 §4, §8, §9)
- ``jwt_peek``          a JWT's claims read without verification (bookkeeping only)
- ``token_request``     token, refresh and client credentials requests and responses
                        (RFC 6749 §4.1.3, §4.4, §5, §6)
- ``revocation``        refresh token revocation on sign-out (RFC 7009)
"""
