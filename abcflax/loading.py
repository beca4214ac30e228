"""Loading a trained model: the bundled default or a checkpoint the user names."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import checkpoint
from .checkpoint import Checkpoint
from .errors import CheckpointError
from .vocab import Vocab

MODEL_ENV = "ABCFLAX_MODEL"  # a model folder or file to use instead of the bundled one


@dataclass
class Model:
    """A ready-to-use model: the NNX module, its vocabulary and where it came from."""

    module: object  # abcflax.model.CharLSTM
    vocab: Vocab
    path: str
    meta: dict

    @property
    def config(self):
        return self.module.config


def default_model_path() -> Path:
    """The model used when none is named: $ABCFLAX_MODEL, else the bundled one."""
    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV])
    from importlib.resources import files

    return Path(str(files("abcflax_data") / "model" / checkpoint.FILE_NAME))


def model_from_checkpoint(ckpt: Checkpoint, path: str = "<memory>") -> Model:
    import jax
    from flax import nnx

    from .model import create_model

    # a zero-initialized skeleton: tracing the real initializers (orthogonal: a QR) costs ~0.2 s of startup
    abstract = nnx.eval_shape(lambda: create_model(ckpt.model_config, initialize=False))
    graphdef, state = nnx.split(abstract)
    try:
        nnx.replace_by_pure_dict(state, ckpt.params)
        shapes_ok = all(
            getattr(leaf, "shape", None) == getattr(ref, "shape", None)
            for leaf, ref in zip(jax.tree_util.tree_leaves(state),
                                 jax.tree_util.tree_leaves(nnx.state(abstract))))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: parameters do not fit the stored model config ({exc})") from None
    if not shapes_ok:
        raise CheckpointError(f"{path}: parameter shapes do not fit the stored model config")
    state = jax.device_put(state)  # not jnp.asarray: that compiles a small program per array
    return Model(nnx.merge(graphdef, state), ckpt.vocab, path, ckpt.meta or {})


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> Model:
    return model_from_checkpoint(checkpoint.load(path), path)


def load_model(path: str | os.PathLike | None = None) -> Model:
    """Load a model folder or checkpoint file (default: the bundled model); cached per file version."""
    target = checkpoint.resolve(path if path is not None else default_model_path())
    try:
        mtime = target.stat().st_mtime
    except FileNotFoundError:
        where = "bundled model" if path is None else str(path)
        raise CheckpointError(f"{where}: no model found at {target}") from None
    return _load_cached(str(target), mtime)


def resolve_model(model) -> Model:
    """A ``Model`` from None (the default), a path, or a ``Model``."""
    if isinstance(model, Model):
        return model
    return load_model(model)


def grammar_folders() -> list:
    """Folders searched for prebuilt grammar tables: the bundled model's, then the user cache (written)."""
    from .runtime import cache_dir

    bundled = default_model_path().parent
    return [bundled, cache_dir() / "grammar"]
