"""Frames behind ``payload_uri``, as an edge's browser page can load them.

A request's ``payload_uri`` comes from a message anyone could have written, so an edge serves a
``file://`` URI only when it resolves inside ``payload_root`` and is an image; ``http(s)://``
URIs go to the browser as they are. Anything else is not shown, with the reason.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

PAYLOAD_PATH = "/payload"
_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"}


def payload_url(uri: str | None, base_url: str = "") -> str | None:
    """The URL a browser loads ``uri`` from: as is for http(s), through the edge for file://.

    >>> payload_url("https://cdn.example/f/1.png")
    'https://cdn.example/f/1.png'
    >>> payload_url("file:///frames/cam%203/1.png", "http://bridge:9101")
    'http://bridge:9101/payload?uri=file%3A%2F%2F%2Fframes%2Fcam%25203%2F1.png'
    >>> payload_url("s3://bucket/1.png") is None
    True
    """
    if not uri:
        return None
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        return uri
    if scheme == "file":
        return f"{base_url.rstrip('/')}{PAYLOAD_PATH}?uri={quote(uri, safe='')}"
    return None


class PayloadRefused(ValueError):
    """A payload this edge will not serve; the message says why."""


def payload_file(uri: str, root: Path | None) -> tuple[Path, str]:
    """The file and content type of a ``file://`` payload inside ``root``.

    Raises
    ------
    PayloadRefused
        When no root is set, the path leaves it, the file is missing or is not an image.
    """
    if root is None:
        raise PayloadRefused("file:// payloads are served only from --payload-root, which is not set")
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        raise PayloadRefused(f"not a local file:// URI: {uri[:200]!r}")
    path = Path(unquote(parts.path)).resolve()
    base = Path(root).resolve()
    if not path.is_relative_to(base):
        raise PayloadRefused(f"{path} is outside --payload-root {base}")
    content_type = mimetypes.guess_type(path.name)[0]
    if content_type not in _IMAGE_TYPES:
        raise PayloadRefused(f"{path.name} is not an image ({content_type or 'unknown type'})")
    if not path.is_file():
        raise PayloadRefused(f"{path} does not exist (yet)")
    return path, content_type
