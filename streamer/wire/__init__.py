"""The message contracts, transport-neutral: formats, validation and encoders.

Import from here: ``from streamer.wire import ItemDecoder, decode_label, encode_item``.
:mod:`~streamer.wire.formats` knows content types and bytes; :mod:`~streamer.wire.items`
(with :mod:`~streamer.wire.item_paths`, its paths per format) and :mod:`~streamer.wire.labels`
what items and labels must contain, using the shared field checks of
:mod:`~streamer.wire.fields`; :mod:`~streamer.wire.encode` writes what the service and the
feeders produce. Nothing here knows Kafka.
"""

from __future__ import annotations

from streamer.wire.encode import (
    DEFAULT_MAX_RAW_BYTES,
    content_type_headers,
    encode_dead_letter,
    encode_item,
    encode_label,
    encode_label_request,
    encode_prediction,
)
from streamer.wire.fields import (
    MAX_ID_LENGTH,
    MAX_LABEL_LENGTH,
    MAX_PAYLOAD_URI_LENGTH,
    MAX_STREAM_LENGTH,
)
from streamer.wire.formats import (
    CONTENT_TYPE_HEADER,
    DEFAULT_MAX_BYTES,
    FLOAT32,
    JSON,
    MSGPACK,
    DecodeError,
    header_content_type,
    normalize_content_type,
)
from streamer.wire.items import ItemBatch, ItemDecoder, ItemMeta
from streamer.wire.labels import LabelMessage, canonical_label, decode_label

__all__ = [
    "CONTENT_TYPE_HEADER",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_RAW_BYTES",
    "FLOAT32",
    "JSON",
    "MAX_ID_LENGTH",
    "MAX_LABEL_LENGTH",
    "MAX_PAYLOAD_URI_LENGTH",
    "MAX_STREAM_LENGTH",
    "MSGPACK",
    "DecodeError",
    "ItemBatch",
    "ItemDecoder",
    "ItemMeta",
    "LabelMessage",
    "canonical_label",
    "content_type_headers",
    "decode_label",
    "encode_dead_letter",
    "encode_item",
    "encode_label",
    "encode_label_request",
    "encode_prediction",
    "header_content_type",
    "normalize_content_type",
]
