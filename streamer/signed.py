"""Signed blobs: ``magic + HMAC-SHA256(key, payload) + payload``.

Every model's state (:mod:`streamer.models`) and the service's checkpoints
(:mod:`streamer.store.checkpoint`) use this format. Nothing in a blob is parsed (or unpickled)
before its signature was checked against the caller's key, so state that came back from Redis
or over the network cannot run code.

Examples
--------
>>> blob = seal(b"demo\\n", b"key", b"payload")
>>> unseal(b"demo\\n", b"key", blob, "demo model")
b'payload'
>>> unseal(b"demo\\n", b"other", blob, "demo model")
Traceback (most recent call last):
...
streamer.signed.SignatureError: model checkpoint failed its integrity check: it was modified, truncated or signed with a different key; refusing to load it
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SignatureError", "seal", "unseal"]

_DIGEST = hashlib.sha256().digest_size


class SignatureError(ValueError):
    """A blob whose signature does not match its payload under the caller's key."""


def seal(magic: bytes, key: bytes, payload: bytes) -> bytes:
    """``payload`` behind ``magic`` and its signature under ``key``."""
    return magic + _sign(key, payload) + payload


def unseal(magic: bytes, key: bytes, data: bytes, what: str) -> bytes:
    """The payload of a :func:`seal` blob; ``ValueError`` unless ``magic`` and the signature match.

    ``what`` names the format in the error (``not a streamer {what} checkpoint``); a signature
    that does not match raises :class:`SignatureError`.
    """
    if not isinstance(data, bytes | bytearray) or not data.startswith(magic):
        raise ValueError(f"not a streamer {what} checkpoint (wrong header)")
    body = bytes(data[len(magic):])
    signature, payload = body[:_DIGEST], body[_DIGEST:]
    if not hmac.compare_digest(signature, _sign(key, payload)):
        raise SignatureError(
            "model checkpoint failed its integrity check: it was modified, truncated or "
            "signed with a different key; refusing to load it"
        )
    return payload


def _sign(key: bytes, payload: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray) or not key:
        raise ValueError("key must be non-empty bytes (the secret that signs model checkpoints)")
    return hmac.new(bytes(key), payload, hashlib.sha256).digest()
