"""A read-only Secret Service client: the store's reads, without loading ``keyring``.

``mcp-broker token URL`` with no broker running reads one token set from the keyring. Through
``keyring`` that read cost more than the interpreter's start-up three times over: importing
keyring (its backend machinery pulls ``urllib.request``, ``http.client``, ``email`` and
``importlib_metadata``), then a new D-Bus connection and a new encrypted session for each of the
entries a token set is stored in (a manifest and its chunks). This reader asks the same Secret
Service the same questions keyring's ``SecretService`` backend asks, on one connection and one
session per store call, loading only ``jeepney`` and one AES cipher.

It answers only what it can answer exactly as keyring would: a value found in the default
collection under the same attributes keyring searches by (``service``, ``username``; the first
item found, as keyring takes). Anything else is :class:`NoAnswer` (nothing found, a locked
collection or item, no default collection, no bus, a daemon that does not offer the encrypted
session, an unexpected reply) and the caller asks keyring, which prompts to unlock, creates the
default collection, maps errors to messages, exactly as before. The reader never writes, never
unlocks, never prompts.

Security: secrets cross the bus inside the Secret Service's encrypted session
(``dh-ietf1024-sha256-aes128-cbc-pkcs7``: a fresh Diffie-Hellman key per session, HKDF-SHA256,
AES-128-CBC), as keyring's backend sends them. The session bus is the user's own, so a ``plain``
session would expose a secret only to processes that can already ask the daemon for it; but it
would also put every token in clear text into bus monitors, message dumps and the daemon's debug
output, and it is not what keyring does. The cipher costs one import (about 10 ms) and two modular
exponentiations (about 1 ms each) per call, so it is kept: a daemon that does not offer it gets
:class:`NoAnswer`, never a plain session. Padding is checked strictly (a bad block is
:class:`NoAnswer`, not a guess), and no secret, key or ciphertext is ever logged or put into an
exception message.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

BUS_NAME = "org.freedesktop.secrets"
SERVICE_PATH = "/org/freedesktop/secrets"
DEFAULT_COLLECTION = "/org/freedesktop/secrets/aliases/default"
SERVICE_INTERFACE = "org.freedesktop.Secret.Service"
COLLECTION_INTERFACE = "org.freedesktop.Secret.Collection"
ITEM_INTERFACE = "org.freedesktop.Secret.Item"
SESSION_INTERFACE = "org.freedesktop.Secret.Session"
ALGORITHM = "dh-ietf1024-sha256-aes128-cbc-pkcs7"

# The 1024-bit MODP group of RFC 2409 (section 6.2), generator 2: the group the Secret Service
# specification names for this algorithm.
DH_PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
    16,
)
KEY_BYTES = 128
# The private exponent's length. The group gives the exchange about 80 bits of security; a
# 256-bit exponent (more than twice that, as NIST SP 800-56A and RFC 3526 ask for short
# exponents in a safe-prime group) keeps the exponent from being the weak part and makes each
# modular exponentiation a quarter of the cost of a full-length one (CPython does them itself:
# about 1 ms instead of 3-12 ms on a busy laptop core).
EXPONENT_BYTES = 32


class NoAnswer(Exception):
    """The reader cannot answer this read exactly as keyring would: ask keyring.

    The message names the step and an error class or D-Bus error name, never a value."""


class SecretServiceReader:
    """Reads secrets from the Secret Service's default collection. Not thread-safe: one per
    store call, on the store's worker thread; :meth:`close` when the call is done."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._connection: Any = None
        self._session: tuple[str, bytes] | None = None  # object path, AES key

    def get_password(self, service: str, username: str) -> str:
        """The secret keyring would return for (``service``, ``username``); :class:`NoAnswer`
        when there is none or this reader cannot tell."""
        found = self._call(
            DEFAULT_COLLECTION,
            COLLECTION_INTERFACE,
            "SearchItems",
            "a{ss}",
            ({"service": service, "username": username},),
        )
        paths = found[0] if found else []
        if not paths:
            raise NoAnswer("nothing found")  # keyring also looks (and unlocks, if locked)
        session, key = self._open_session()
        (secret,) = self._call(paths[0], ITEM_INTERFACE, "GetSecret", "o", (session,))
        secret_session, iv, ciphertext, _content_type = secret
        if secret_session != session:
            raise NoAnswer("the secret came in another session")
        try:
            return _decrypt(key, bytes(iv), bytes(ciphertext)).decode("utf-8")
        except UnicodeDecodeError:
            raise NoAnswer("the secret is not UTF-8 text") from None

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if self._session is not None:
                self._call_on(connection, self._session[0], SESSION_INTERFACE, "Close", "", ())
        except NoAnswer:
            pass  # the daemon ends the session with the connection anyway
        finally:
            self._session = None
            connection.close()

    def _open_session(self) -> tuple[str, bytes]:
        if self._session is None:
            private = int.from_bytes(os.urandom(EXPONENT_BYTES), "big") | 1 << 255
            public = pow(2, private, DH_PRIME).to_bytes(KEY_BYTES, "big")
            output, path = self._call(
                SERVICE_PATH, SERVICE_INTERFACE, "OpenSession", "sv", (ALGORITHM, ("ay", public))
            )
            signature, theirs = output
            peer = int.from_bytes(bytes(theirs), "big") if signature == "ay" else 0
            if not 1 < peer < DH_PRIME - 1:
                raise NoAnswer("the daemon's session key is not a valid public key")
            shared = pow(peer, private, DH_PRIME).to_bytes(KEY_BYTES, "big")
            self._session = (path, _hkdf_sha256(shared, 16))
        return self._session

    def _call(
        self, path: str, interface: str, method: str, signature: str, body: tuple[Any, ...]
    ) -> Any:
        if self._connection is None:
            self._connection = _connect(self._timeout)
        return self._call_on(self._connection, path, interface, method, signature, body)

    def _call_on(
        self,
        connection: Any,
        path: str,
        interface: str,
        method: str,
        signature: str,
        body: tuple[Any, ...],
    ) -> Any:
        from jeepney import DBusAddress, HeaderFields, MessageType, new_method_call

        address = DBusAddress(path, bus_name=BUS_NAME, interface=interface)
        message = new_method_call(address, method, signature or None, body)
        try:
            reply = connection.send_and_get_reply(message, timeout=self._timeout)
        except Exception as exc:  # a closed socket, a timeout: keyring will tell
            raise NoAnswer(f"{method}: {type(exc).__name__}") from None
        if reply.header.message_type == MessageType.error:
            raise NoAnswer(f"{method}: {reply.header.fields.get(HeaderFields.error_name)}")
        return reply.body


def _connect(timeout: float) -> Any:
    try:
        from jeepney.io.blocking import open_dbus_connection

        return open_dbus_connection(bus="SESSION", auth_timeout=min(timeout, 1.0))
    except Exception as exc:  # no jeepney, no bus address, nobody listening
        raise NoAnswer(f"no session bus: {type(exc).__name__}") from None


def _hkdf_sha256(secret: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with SHA-256, no salt (a zero key) and no info, as the specification says."""
    prk = hmac.new(b"\0" * hashlib.sha256().digest_size, secret, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + bytes([counter]), hashlib.sha256).digest()
        okm, counter = okm + block, counter + 1
    return okm[:length]


def _decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """AES-128-CBC with PKCS #7 padding, checked (a bad padding is :class:`NoAnswer`)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if len(iv) != 16 or not ciphertext or len(ciphertext) % 16:
        raise NoAnswer("the secret is not an AES-CBC message")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= 16 or padded[-pad:] != bytes([pad]) * pad:
        raise NoAnswer("the secret's padding is not PKCS #7")
    return padded[:-pad]
