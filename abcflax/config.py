"""Frozen, typed configuration. Presets are functions; the CLI applies flags with ``dataclasses.replace``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

# Limits of the training options (the CLI's ranges). Step counts reach jitted code as int32 (optax's step
# count, the schedule's boundaries, fold_in's data): a billion steps is far beyond any run and far inside
# 2**31 - 1, with room for warm-up + 1. A batch of 4096 windows of the longest (4096 characters) keeps a
# step's logits (batch x length x vocabulary) under 2**31 elements.
MAX_STEPS = 1_000_000_000
MAX_BATCH_SIZE = 4096
MAX_SEQ_LEN = 4096
# the most times SOURCE@N may repeat a source: a weight for mixing corpora (the README's recipes use @2 to
# @9; a handful of one's own tunes against a big tunebook might take @100). The training stream holds every
# copy, so an unbounded N grew memory until the machine gave out instead of saying why
MAX_COPIES = 1000
MAX_PART_BARS = 64  # --part-bars: longer "parts" are no phrases (0 turns the phrase rule off)
# the highest dropout rate train takes, from the library as from the CLI: masks come from one random byte
# per element (rates in 256ths), so a rate near 1 drops every unit and the step divides by zero (NaNs)
MAX_DROPOUT = 0.95
SEED_MODULUS = 2**32  # seeds are taken modulo this (JAX's keys hold 32 bits of them), by train as by continue

# a field's annotation -> the stored values it takes (an int is a fine float; a bool is no number here)
_FIELD_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,)}


def _checked_fields(cls, data) -> dict:
    """The entries of ``data`` that are fields of ``cls``, each of its field's type; a TypeError naming the
    first that is not. Unknown entries are left out (a checkpoint from a newer version)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__} is {type(data).__name__}, not a mapping")
    chosen = {}
    for field in fields(cls):
        if field.name not in data:
            continue
        value, wanted = data[field.name], _FIELD_TYPES.get(field.type, (object,))  # other types: unchecked
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            raise TypeError(f"{cls.__name__}.{field.name} is {value!r}, not of type {field.type}")
        chosen[field.name] = value
    return chosen


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the char-LSTM; stored in every checkpoint so sizes are never guessed at load time."""

    vocab_size: int = 100  # characters + start/end markers (set from the vocabulary)
    embed_dim: int = 64  # character embedding width
    hidden: int = 384  # LSTM units per layer
    layers: int = 2  # stacked LSTM layers
    dropout: float = 0.25  # dropout on embeddings, between layers and before the head (training only)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return cls(**_checked_fields(cls, data))


@dataclass(frozen=True)
class TrainConfig:
    """How to train; stored in checkpoints so ``--resume`` continues the same run."""

    steps: int = 10_000  # optimizer updates in total
    batch_size: int = 32  # windows per update (global, split over devices)
    seq_len: int = 128  # characters per window (backprop through time length)
    learning_rate: float = 2e-3  # peak Adam learning rate
    warmup_steps: int = 200  # linear warm-up before cosine decay
    min_lr_ratio: float = 0.05  # final learning rate as a share of the peak
    weight_decay: float = 1e-5  # AdamW decoupled weight decay
    clip_norm: float = 1.0  # global gradient-norm clip
    # steps trained with the model's dropout off before it switches on ("late dropout"): early on the model
    # underfits and dropout only slows it down, and without dropout on the embeddings the step is cheaper;
    # 0 is also what a checkpoint from before this field gets, and it trained with dropout from the start
    dropout_from: int = 0
    valid_share: float = 0.05  # share of tunes kept aside for validation
    eval_every: int = 250  # steps between validation runs and checkpoints
    eval_chars: int = 60_000  # validation characters scored per evaluation (bounded cost)
    seed: int = 0  # data order, initialization and dropout all derive from it
    transpose: int = 0  # repeats of a source (path@N) are transposed by up to this many fifths (0: verbatim)
    # of each repeated chord-bearing tune's copies, this many (at most N-1) are written with every chord after
    # the notes it accompanies (harmonizer.chords_after_text): an auxiliary task that helps harmonization
    chords_after: int = 0
    # read every tune from its last character to its first: a right-to-left model, which harmonize uses to
    # rescore its chord choices with the melody that follows them (never for continuing a tune)
    reverse: bool = False
    # the products over all time steps at once (input projections, weight and input gradients) take
    # bfloat16 operands, accumulating in float32; the cell, the loss and the optimizer stay float32. About
    # 1.25x faster steps on a CPU with AVX512-BF16 (AMD Zen 4, Intel Cooper Lake or later) with the same
    # bits/char per step, slower on one without (XLA converts there); evaluation, scoring and sampling are
    # float32 either way
    bf16_matmuls: bool = False
    # the recurrence's per-step products read w_hh (and h, or the gate gradient) rounded to bfloat16,
    # accumulating in float32; the carried state stays float32. Those products are bound by reading w_hh,
    # so this pays for wide layers (the MIT lab shape, H = 1024: 1.31x faster steps with bf16_matmuls),
    # but it cost the default's short recipe about 0.01 bits/char at 1,600 steps
    bf16_recurrence: bool = False
    # Adam's update with Nesterov momentum (NAdam's, ``optax.adamw(nesterov=True)``): on the default's short
    # recipe it reached 1.3445 held-out bits/char at step 1,100 where plain Adam had 1.3839, about 300 steps
    # sooner (benchmarks/RESULTS.md, session 26); False is what a checkpoint from before this field trained with
    nesterov: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return cls(**_checked_fields(cls, data))


@dataclass(frozen=True)
class SampleConfig:
    """How to sample a continuation."""

    max_chars: int = 1200  # hard cap on generated characters
    temperature: float = 1.0  # softmax temperature (0 = greedy)
    top_k: int = 0  # keep only the k most likely characters (0 = off)
    top_p: float = 1.0  # nucleus sampling threshold (1 = off)
    seed: int = 0  # random seed; the same seed gives the same tune


def preset(name: str) -> ModelConfig:
    """Named model shapes: ``tiny`` for tests, ``default`` for the bundled model, and the seed shapes."""
    presets = {
        "tiny": ModelConfig(embed_dim=8, hidden=16, layers=1, dropout=0.0),
        "small": ModelConfig(embed_dim=32, hidden=128, layers=2, dropout=0.1),
        "default": ModelConfig(embed_dim=64, hidden=384, layers=2, dropout=0.25),
        "keras-seed": ModelConfig(embed_dim=512, hidden=256, layers=3, dropout=0.0),
        "mit-lab": ModelConfig(embed_dim=256, hidden=1024, layers=1, dropout=0.0),
    }
    if name not in presets:
        from .errors import UsageError

        raise UsageError(f"unknown preset {name!r}; choose from {', '.join(presets)}")
    return presets[name]


PRESET_NAMES = ("tiny", "small", "default", "keras-seed", "mit-lab")
