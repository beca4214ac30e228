"""Loading a trained model: the bundled default or a checkpoint the user names."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from . import checkpoint
from .checkpoint import Checkpoint
from .config import ModelConfig
from .errors import CheckpointError, UsageError
from .vocab import Vocab

MODEL_ENV = "ABCFLAX_MODEL"  # a model folder or file to use instead of the bundled one
REVERSE_NAME = "reverse.msgpack"  # a right-to-left companion model (train --reverse), beside a model's checkpoint


@dataclass
class Model:
    """A ready-to-use model: its weights (a plain pytree: sampling and scoring need no flax.nnx), shape,
    vocabulary and where it came from. ``module`` builds the NNX module on first use (evaluation, tests)."""

    weights: object  # abcflax.lstm.Weights, on the device
    config: ModelConfig
    vocab: Vocab
    path: str
    meta: dict

    @classmethod
    def from_module(cls, module, vocab: Vocab, path: str = "<memory>", meta: dict | None = None) -> "Model":
        return cls(module.weights(), module.config, vocab, path, meta or {})

    @property
    def reverse(self) -> bool:
        """Whether this model reads tunes right to left (trained with ``--reverse``)."""
        return bool(self.meta.get("reverse"))

    @cached_property
    def module(self):
        """The ``abcflax.model.CharLSTM`` holding these weights."""
        from flax import nnx

        from .lstm import weights_to_params
        from .model import create_model

        graphdef, state = nnx.split(nnx.eval_shape(lambda: create_model(self.config, initialize=False)))
        nnx.replace_by_pure_dict(state, weights_to_params(self.weights))
        return nnx.merge(graphdef, state)


def default_model_path() -> Path:
    """The model used when none is named: $ABCFLAX_MODEL, else the bundled one."""
    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV])
    from importlib.resources import files

    return Path(str(files("abcflax_data") / "model" / checkpoint.FILE_NAME))


def _default_model_name() -> str:
    """How messages name the default model: the variable that chose it, else the bundled one."""
    return f"{MODEL_ENV}={os.environ[MODEL_ENV]}" if os.environ.get(MODEL_ENV) else "bundled model"


def model_from_checkpoint(ckpt: Checkpoint, path: str = "<memory>") -> Model:
    import jax

    from .lstm import weights_from_params

    weights = weights_from_params(ckpt.params, ckpt.model_config, path)
    weights = jax.device_put(weights)  # not jnp.asarray: that compiles a small program per array
    return Model(weights, ckpt.model_config, ckpt.vocab, path, ckpt.meta or {})


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> Model:
    return model_from_checkpoint(checkpoint.load(path), path)


def load_model(path: str | os.PathLike | None = None) -> Model:
    """Load a model folder or checkpoint file (default: the bundled model); cached per file version."""
    target = checkpoint.resolve(path if path is not None else default_model_path())
    where = str(path) if path is not None else _default_model_name()
    try:
        mtime = target.stat().st_mtime
    except FileNotFoundError:
        raise CheckpointError(f"{where}: no model found at {target}") from None
    except OSError as exc:  # a path below a regular file (ENOTDIR), a loop of links, no permission...
        raise CheckpointError(f"{where}: cannot open the model ({exc.strerror or exc})") from None
    return _load_cached(str(target), mtime)


def resolve_model(model, *, reverse: bool = False) -> Model:
    """A ``Model`` from None (the default), a path, or a ``Model``; a ``UsageError`` when it reads tunes the
    other way round than asked (a right-to-left model cannot continue a tune)."""
    loaded = model if isinstance(model, Model) else load_model(model)
    if loaded.reverse != reverse:
        kind = ("reads tunes right to left (trained with --reverse): it can only rescore harmonize's chords"
                if loaded.reverse else "reads tunes left to right: it is not a right-to-left (--reverse) model")
        raise UsageError(f"{loaded.path}: this model {kind}")
    return loaded


def reverse_companion(model: Model) -> Model | None:
    """The right-to-left model kept beside ``model``'s checkpoint (``reverse.msgpack``), if there is one."""
    if model.path.startswith("<"):  # built in memory: no folder
        return None
    own = checkpoint.resolve(model.path)  # the path may name the model's folder
    beside = own.parent / REVERSE_NAME
    if not beside.is_file() or beside == own:
        return None
    return resolve_model(beside, reverse=True)


def grammar_folders() -> list:
    """Folders searched for prebuilt grammar tables: the bundled model's, then the user cache (written)."""
    from .runtime import cache_dir

    bundled = default_model_path().parent
    return [bundled, cache_dir() / "grammar"]
