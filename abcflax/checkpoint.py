"""Checkpoints without pickle: config + vocabulary + parameters (+ optimizer state) in msgpack.

File layout: a magic line, the SHA-256 of the payload, then the msgpack payload. The digest is checked
at load, so a corrupt or truncated file is refused instead of giving a wrong model. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import atomic
from .config import ModelConfig, TrainConfig
from .errors import CheckpointError
from .vocab import Vocab

MAGIC = b"ABCFLAX-CHECKPOINT 1\n"
FILE_NAME = "model.msgpack"  # inside a model folder


@dataclass
class Checkpoint:
    """Everything that rebuilds a model (and, for training checkpoints, resumes its run)."""

    model_config: ModelConfig
    vocab: Vocab
    params: dict  # nnx.to_pure_dict of the model's Param state (numpy arrays)
    train_config: TrainConfig | None = None
    opt_state: list | None = None  # the optax state's leaves, in tree order
    step: int = 0  # optimizer updates done
    meta: dict | None = None  # free-form facts: sources, wall time, metrics


def _plain(tree):
    """Nested plain dicts with string keys and numpy leaves (what msgpack can hold)."""
    from collections.abc import Mapping

    if isinstance(tree, Mapping):
        return {str(key): _plain(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_plain(value) for value in tree]
    return np.asarray(tree) if hasattr(tree, "shape") else tree


def to_bytes(ckpt: Checkpoint) -> bytes:
    from flax import serialization

    payload = {
        "model_config": ckpt.model_config.to_dict(),
        "vocab": "".join(ckpt.vocab.chars),
        "params": _plain(ckpt.params),
        "train_config": ckpt.train_config.to_dict() if ckpt.train_config else None,
        "opt_state": _plain(list(ckpt.opt_state)) if ckpt.opt_state is not None else None,
        "step": int(ckpt.step),
        "meta": ckpt.meta or {},
    }
    body = serialization.msgpack_serialize(payload)
    return MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def _array_from_bytes(data: bytes) -> np.ndarray:
    """One array in flax.serialization's msgpack layout: (shape, dtype name, row-major bytes)."""
    import msgpack

    shape, dtype_name, buffer = msgpack.unpackb(data, raw=True)
    if dtype_name == b"bfloat16":
        import ml_dtypes  # installed with jax

        dtype = np.dtype(ml_dtypes.bfloat16)
    else:
        dtype = np.dtype(dtype_name.decode())
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


def _ext_hook(code: int, data: bytes):
    import msgpack

    if code == 1:  # an ndarray
        return _array_from_bytes(data)
    if code == 3:  # a numpy scalar, stored as a 0-d array
        return _array_from_bytes(data)[()]
    if code == 2:  # a complex number
        real, imag = msgpack.unpackb(data)
        return complex(real, imag)
    return msgpack.ExtType(code, data)


def _unchunked(tree):
    """Arrays flax split into chunks (over 1 GiB each) joined again."""
    if isinstance(tree, dict):
        if "__msgpack_chunked_array__" in tree:
            shape = tuple(tree["shape"][str(i)] for i in range(len(tree["shape"])))
            chunks = [tree["chunks"][str(i)] for i in range(len(tree["chunks"]))]
            return np.concatenate(chunks).reshape(shape)
        return {key: _unchunked(value) for key, value in tree.items()}
    return tree


def msgpack_restore(body: bytes):
    """``flax.serialization.msgpack_restore`` without importing flax: loading a model for ``continue`` should
    not pay flax's ~0.2 s import, and the layout (msgpack with ndarray extension types) is flax's documented one."""
    import msgpack

    return _unchunked(msgpack.unpackb(body, ext_hook=_ext_hook, raw=False, strict_map_key=False))


def from_bytes(data: bytes, source: str = "checkpoint") -> Checkpoint:
    import msgpack

    if not data.startswith(MAGIC):
        raise CheckpointError(f"{source}: not an abcflax checkpoint")
    digest, body = data[len(MAGIC): len(MAGIC) + 64], data[len(MAGIC) + 65:]
    if hashlib.sha256(body).hexdigest().encode() != digest:
        raise CheckpointError(f"{source}: checkpoint is corrupt or truncated (digest mismatch)")
    try:
        payload = msgpack_restore(body)
    except (TypeError, ValueError, KeyError, msgpack.UnpackException) as exc:
        raise CheckpointError(f"{source}: checkpoint cannot be decoded ({exc})") from None
    ckpt = _from_payload(payload, source)
    if ckpt.model_config.vocab_size != ckpt.vocab.size:
        raise CheckpointError(f"{source}: vocabulary has {ckpt.vocab.size} characters but the model expects "
                              f"{ckpt.model_config.vocab_size}")
    _require_finite(ckpt.params, source)
    return ckpt


# payload field -> (the types it may have, what to call them); a digest only proves the bytes are as written,
# not that whoever wrote them wrote a checkpoint of this layout
FIELD_KINDS = {
    "model_config": ((Mapping,), "a mapping"),
    "vocab": ((str,), "a string"),
    "params": ((Mapping,), "a mapping"),
    "train_config": ((Mapping, type(None)), "a mapping"),
    "opt_state": ((list, tuple, type(None)), "a list"),
    "step": ((int,), "an integer"),
    "meta": ((Mapping, type(None)), "a mapping"),
}
REQUIRED_FIELDS = ("model_config", "vocab", "params")


def _from_payload(payload, source: str) -> Checkpoint:
    """The Checkpoint a decoded payload holds; a CheckpointError naming the first field that is missing or
    of the wrong type."""
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"{source}: checkpoint holds {type(payload).__name__}, not a mapping of fields")
    for name in REQUIRED_FIELDS:
        if name not in payload:
            raise CheckpointError(f"{source}: checkpoint has no {name!r} field")
    for name, (types, what) in FIELD_KINDS.items():
        value = payload.get(name)
        if name in payload and (not isinstance(value, types) or isinstance(value, bool)):
            raise CheckpointError(f"{source}: checkpoint field {name!r} is {type(value).__name__}, not {what}")
    vocab = payload["vocab"]
    if len(set(vocab)) != len(vocab):
        raise CheckpointError(f"{source}: checkpoint vocabulary repeats characters")
    try:
        model_config = ModelConfig.from_dict(payload["model_config"])
        train_config = TrainConfig.from_dict(payload["train_config"]) if payload.get("train_config") else None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: checkpoint has a malformed config ({exc})") from None
    return Checkpoint(model_config, Vocab(tuple(vocab)), payload["params"], train_config, payload.get("opt_state"),
                      payload.get("step", 0), payload.get("meta") or {})


def _require_finite(params: Mapping, source: str) -> None:
    """Refuse parameters that are not numbers or hold NaN or Inf: such a model writes nothing useful (a
    continuation of only the prompt, every chord the same), and nothing else would say why."""
    import jax

    for key_path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = "/".join(str(getattr(key, "key", key)) for key in key_path)
        try:
            finite = np.isfinite(np.asarray(leaf)).all()
        except TypeError:  # text or objects where numbers belong
            raise CheckpointError(f"{source}: parameter {name} is not an array of numbers") from None
        if not finite:
            raise CheckpointError(f"{source}: parameter {name} holds NaN or Inf values; the checkpoint is corrupt "
                                  "(was the training diverging?)")


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint file, given the file itself or the model folder holding it."""
    target = Path(path)
    try:
        is_dir = target.is_dir()
    except OSError:  # Path.is_dir raises for some errors (no permission): then it is no folder we can read
        is_dir = False
    return target / FILE_NAME if is_dir else target


def save(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    target = resolve(path) if Path(path).is_dir() or not str(path).endswith(".msgpack") else Path(path)
    if not str(target).endswith(".msgpack"):
        target = target / FILE_NAME
    atomic.write_bytes(target, to_bytes(ckpt))
    return target


def load(path: str | os.PathLike) -> Checkpoint:
    target = resolve(path)
    try:
        if not stat.S_ISREG(target.stat().st_mode):  # a FIFO would block the read, /dev/zero never end it
            raise CheckpointError(f"{target}: not a regular file, not a checkpoint")
        data = target.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no model found (expected {target})") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from None
    return from_bytes(data, str(target))
