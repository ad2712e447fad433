"""The torch head's safe state format: a JSON header and raw little-endian tensor bytes.

``payload = len(header) as <Q | header | tensor bytes``. The header holds the config, the
classes, the version, the counters and the random generators' states, and, per tensor, its
name, dtype (``<f4``, ``<f8`` or ``<i8``), shape and place in the bytes. No pickle: reading it
never runs code. :meth:`TorchHead.to_bytes <streamer.models.torch_head.TorchHead.to_bytes>`
signs it (HMAC-SHA256, :mod:`streamer.signed`) and nothing is parsed before the signature is
verified; pickling a head stores the same payload.

Tensors: ``p.<param>`` (the members' weights), ``o.m.<param>`` and ``o.v.<param>`` (Adam's
moments), ``scaler.mean`` and ``scaler.m2``, ``replay.x`` and ``replay.y``, and ``bank`` (the
novelty bank's rows). The **publication form** (``weights_only``) leaves the bank out and
writes its counters as an empty bank's, so a reader of any version reads it as one: the bank is
the writing process's own state (:mod:`streamer.models.torch_bank`).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

try:
    import torch
except ImportError:  # the torch extra is not installed
    torch = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from streamer.models.torch_head import TorchHead

__all__ = ["MAGIC", "read_payload", "write_payload"]

MAGIC = b"streamer.torch.v1\n"
_FILE_DTYPES = {"<f4": np.float32, "<f8": np.float64, "<i8": np.int64}


def write_payload(head: TorchHead, *, weights_only: bool = False) -> bytes:
    """The unsigned payload of ``head``; ``weights_only``: without its novelty bank."""
    tensors: dict[str, torch.Tensor] = {f"p.{k}": v for k, v in head._params.items()}
    tensors.update({f"o.{k}": v for k, v in head._moments.items()})
    if head._mean is not None and head._m2 is not None:
        tensors["scaler.mean"], tensors["scaler.m2"] = head._mean, head._m2
    if head._replay_x is not None and head._replay_y is not None:
        tensors["replay.x"], tensors["replay.y"] = head._replay_x, head._replay_y
    bank = head._bank.empty() if weights_only else head._bank
    if bank.rows is not None:
        tensors["bank"] = bank.rows[: bank.size]
    entries, blobs, offset = [], [], 0
    for name in sorted(tensors):
        arr = tensors[name].detach().cpu().numpy()
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        raw = arr.tobytes()
        entries.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                        "offset": offset, "nbytes": len(raw)})
        blobs.append(raw)
        offset += len(raw)
    meta = {
        "config": asdict(head.config), "spec": head.spec, "classes": head.classes,
        "version": head.version, "n_features": head.n_features, "t": head._t,
        "count": head._count, "replay_size": head._replay_size, "replay_next": head._replay_next,
        "rng": head._rng.bit_generator.state, **bank.meta(),
    }
    header = json.dumps({"format": 1, "meta": meta, "tensors": entries}, sort_keys=True,
                        separators=(",", ":"), allow_nan=False).encode()
    return struct.pack("<Q", len(header)) + header + b"".join(blobs)


def read_payload(cls: type[TorchHead], payload: bytes, *, device: str | None = None) -> TorchHead:
    """A ``cls`` head from :func:`write_payload`'s bytes (already verified by the caller);
    ``device`` overrides the saved one. ``ValueError`` when the bytes are malformed."""
    try:
        (size,) = struct.unpack_from("<Q", payload)
        header = json.loads(payload[8 : 8 + size])
        meta, entries = header["meta"], header["tensors"]
        if header.get("format") != 1:
            raise ValueError(f"format {header.get('format')!r}")
        blob = memoryview(payload)[8 + size :]
        arrays = {entry["name"]: _read_array(entry, blob) for entry in entries}
        config = dict(meta["config"])
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"torch head checkpoint is malformed ({exc}); was it written by this version?") from None
    kind = config.pop("kind")
    if device is not None:
        config["device"] = device
    model = cls(kind, spec=meta["spec"], **config)
    model.classes = list(meta["classes"])
    model.version = int(meta["version"])
    model.n_features = meta["n_features"]
    model._t, model._count = int(meta["t"]), int(meta["count"])
    model._replay_size, model._replay_next = int(meta["replay_size"]), int(meta["replay_next"])
    model._rng.bit_generator.state = meta["rng"]

    def tensor(arr: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(arr).to(model.device)
        return t if arr.dtype == np.int64 else t.to(model.dtype)

    for name, arr in arrays.items():
        group, _, key = name.partition(".")
        if group == "p":
            model._params[key] = tensor(arr)
        elif group == "o":
            model._moments[key] = tensor(arr)
    if "scaler.mean" in arrays:
        model._mean, model._m2 = tensor(arrays["scaler.mean"]), tensor(arrays["scaler.m2"])
    if "replay.x" in arrays:
        model._replay_x, model._replay_y = tensor(arrays["replay.x"]), tensor(arrays["replay.y"])
    model._bank.restore(meta, tensor(arrays["bank"]) if "bank" in arrays else None)
    return model


def _read_array(entry: dict[str, Any], blob: memoryview) -> np.ndarray:
    dtype = _FILE_DTYPES.get(entry["dtype"])
    if dtype is None:
        raise ValueError(f"tensor {entry['name']!r} has unsupported dtype {entry['dtype']!r}")
    shape = [int(s) for s in entry["shape"]]
    count = math.prod(shape)
    offset, nbytes = int(entry["offset"]), int(entry["nbytes"])
    if min(shape, default=0) < 0 or nbytes != count * np.dtype(dtype).itemsize or offset < 0 \
            or offset + nbytes > len(blob):
        raise ValueError(f"tensor {entry['name']!r} does not fit the data")
    return np.frombuffer(blob, dtype=np.dtype(dtype).newbyteorder("<"), count=count,
                         offset=offset).astype(dtype).reshape(shape)
