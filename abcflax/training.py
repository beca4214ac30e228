"""Training: optax AdamW with clipping and warm-up + cosine decay, a pure jitted train step sharded over a
device mesh, whole-tune validation bpc, atomic periodic checkpoints and exact resume.

Data order, dropout and initialization derive from ``TrainConfig.seed`` and the step number alone, so a
run killed at any moment and resumed from its last checkpoint ends with the same parameters as a run
that was never interrupted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import atomic, checkpoint, layout, lstm, runtime
from .config import (MAX_BATCH_SIZE, MAX_COPIES, MAX_DROPOUT, MAX_SEQ_LEN, MAX_STEPS, SEED_MODULUS, ModelConfig,
                     TrainConfig)
from .errors import AbcflaxError, AbcflaxWarning, CheckpointError, InputError, UsageError
from .evaluate import bits_per_char
from .harmonizer import AFTER_MARKER, chord_degrees, chords_after_text
from .model import CharLSTM, create_model
from .transposition import transpose as transpose_tune
from .tunebook import check_music21_name
from .vocab import Vocab

LOG_NAME = "log.csv"
PLOT_NAME = "loss.png"
LOG_FIELDS = ("step", "train_bpc", "valid_bpc", "chars_per_s", "elapsed_s")
LAYOUT_META = "recurrence_in_columns"  # the checkpoint's record of the layout its run trained in


def hash_share(text: str, salt: str) -> float:
    """A stable number in [0, 1) for a tune, so splits do not depend on file order."""
    digest = hashlib.sha256((salt + text).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_holdout(texts: list[str], share: float, salt: str = "holdout") -> tuple[list[str], list[str]]:
    """(kept, held out): about ``share`` of the tunes, chosen by hash of their text."""
    kept = [t for t in texts if hash_share(t, salt) >= share]
    held = [t for t in texts if hash_share(t, salt) < share]
    return kept, held


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    # warm-up starts one step in, so the very first update already moves every parameter
    schedule = optax.warmup_cosine_decay_schedule(
        config.learning_rate / max(1, config.warmup_steps), config.learning_rate, max(1, config.warmup_steps), max(config.steps, config.warmup_steps + 1),
        end_value=config.learning_rate * config.min_lr_ratio)
    return optax.chain(optax.clip_by_global_norm(config.clip_norm),
                       optax.adamw(schedule, weight_decay=config.weight_decay, nesterov=config.nesterov))


def precision_of(config: TrainConfig) -> lstm.Precision:
    """Which matmuls of a training step take bfloat16 operands, from ``config``'s two switches."""
    return lstm.Precision(wide=config.bf16_matmuls, recurrence=config.bf16_recurrence)


def make_train_step(graphdef, tx: optax.GradientTransformation, dropout: bool = True,
                    precision: lstm.Precision = lstm.FLOAT32):
    """A pure ``(params, opt_state, x_BxT, y_BxT, key) -> (params, opt_state, loss)``; jit it where called.
    ``dropout=False``: the model's dropout is off (``key`` is then unused), as before ``dropout_from``.
    ``precision``: the matmuls in bfloat16 (``precision_of``)."""

    def loss_fn(params, x_BxT, y_BxT, key):
        model = nnx.merge(graphdef, params)
        logits_BxTxV, _ = model(x_BxT, dropout_key=key if dropout else None, precision=precision)
        return optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, y_BxT).mean()

    def train_step(params, opt_state, x_BxT, y_BxT, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, x_BxT, y_BxT, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step


def copy_shifts(copies: int, transpose: int) -> list[int]:
    """Fifths by which each of a tune's ``copies`` is transposed: 0, +1, -1, +2, -2 ... up to
    ``transpose``, then round again (``copy_shifts(4, 1) == [0, 1, -1, 0]``)."""
    order = [0] + [sign * f for f in range(1, transpose + 1) for sign in (1, -1)]
    return [order[k % len(order)] for k in range(copies)]


def _transposed(text: str, fifths: int, known: set[str]) -> str:
    """A tune moved by ``fifths``; one that cannot be transposed (or would need a character the vocabulary
    lacks) stays in its key."""
    if fifths:
        try:
            moved = transpose_tune(text, fifths)
            if set(moved) <= known:
                return moved
        except InputError:
            pass
    return text


def _copy_ids(text: str, after: bool, vocab: Vocab, known: set[str], reverse: bool = False) -> np.ndarray | None:
    """One copy of a (transposed) tune as ids, read backwards with ``reverse`` (the markers stay: a tune
    still starts with the start marker). A chords-after copy (``after``) of a tune without chord symbols
    is None: it is left out."""
    if after:
        text = chords_after_text(text)
        if text is None or not set(text) <= known:
            return None
    ids = vocab.encode(text, "training tune")
    return np.concatenate([[vocab.bos_id], ids[::-1] if reverse else ids, [vocab.eos_id]]).astype(np.int32)


def copy_formats(copies: int, chords_after: int) -> list[bool]:
    """Which of a tune's ``copies`` are in the chords-after format: the last ``chords_after`` of them, and
    never the first (every tune is seen at least once as written)."""
    after = min(chords_after, copies - 1)
    return [k >= copies - after for k in range(copies)]


def build_stream(texts: list[str], vocab: Vocab, weights: list[int] | None = None, transpose: int = 0,
                 chords_after: int = 0, reverse: bool = False) -> np.ndarray:
    """All tunes as one id stream, each as start marker + text + end marker, repeated by weight; with
    ``transpose``, the repeats are transposed copies (``copy_shifts``) instead of verbatim ones; with
    ``chords_after``, that many repeats of a chord-bearing tune are in the chords-after format; with
    ``reverse``, every tune is read backwards."""
    parts, known = [], set(vocab.chars)
    for index, text in enumerate(texts):
        count = weights[index] if weights else 1
        plan = list(zip(copy_shifts(count, transpose), copy_formats(count, chords_after)))
        moved = {fifths: _transposed(text, fifths, known) for fifths, _ in set(plan)}  # each shift once
        copies = {(fifths, after): _copy_ids(moved[fifths], after, vocab, known, reverse)
                  for fifths, after in set(plan)}
        parts.extend(copies[form] for form in plan if copies[form] is not None)
    return np.concatenate(parts)


def contains(stream: np.ndarray, ids: np.ndarray) -> bool:
    """Whether ``ids`` occurs in ``stream`` (whether any chords-after copy made it into the stream)."""
    if len(ids) == 0 or len(stream) < len(ids):
        return False
    starts = np.flatnonzero(stream[:len(stream) - len(ids) + 1] == ids[0])
    for j in range(1, len(ids)):
        starts = starts[stream[starts + j] == ids[j]]
    return len(starts) > 0


def batch_at(stream: np.ndarray, step: int, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The batch of training step ``step``: random windows chosen from (seed, step) alone."""
    rng = np.random.default_rng([config.seed, step])
    starts = rng.integers(0, len(stream) - config.seq_len - 1, size=config.batch_size)
    index = starts[:, None] + np.arange(config.seq_len + 1)[None, :]
    window = stream[index]
    return window[:, :-1], window[:, 1:]


def make_mesh(devices: int | None = None, batch_size: int | None = None) -> Mesh:
    """A one-axis ``data`` mesh over the first ``devices`` devices. By default all of them (all hosts' in a
    multi-host run); in one process, as many as split ``batch_size`` evenly (a resumed run's stored batch
    may not split over every device ``split_host_cpu`` made)."""
    available = jax.devices()
    count = len(available) if devices is None else devices
    if devices is None and batch_size and jax.process_count() == 1:
        count = max(n for n in range(1, len(available) + 1) if batch_size % n == 0)
    if count < 1 or count > len(available):
        raise UsageError(f"--devices {devices}: {len(available)} device(s) visible")
    if jax.process_count() > 1 and count != len(available):
        raise UsageError(f"--devices {devices}: a multi-host run uses all {len(available)} devices of its hosts")
    return Mesh(np.array(available[:count]), ("data",))


def init_distributed(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None) -> bool:
    """Join a multi-host run through ``jax.distributed.initialize``, only when a coordinator is named.

    Call it before anything else touches JAX. Every process runs the same command with its own
    ``process_id`` (0 .. num_processes-1); process 0 also hosts the coordinator at ``HOST:PORT``.
    """
    if not coordinator:
        if num_processes not in (None, 1) or process_id not in (None, 0):
            raise UsageError("--num-processes/--process-id need --coordinator HOST:PORT")
        return False
    if num_processes is None or process_id is None:
        raise UsageError("--coordinator needs --num-processes and --process-id")
    if not 0 <= process_id < num_processes:
        raise UsageError(f"--process-id {process_id} is not in 0..{num_processes - 1}")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    return True


def sharded_train_step(graphdef, tx: optax.GradientTransformation, params, opt_state, mesh: Mesh,
                       precision: lstm.Precision = lstm.FLOAT32):
    """Data parallel over ``mesh``: the jitted train step (parameters and optimizer state replicated and
    donated, the batch split over the ``data`` axis), the state placed for it, and the batch's sharding."""
    params, opt_state = replicate((params, opt_state), NamedSharding(mesh, PartitionSpec()))
    return (jitted_train_step(graphdef, tx, mesh, precision=precision), params, opt_state,
            NamedSharding(mesh, PartitionSpec("data")))


def jitted_train_step(graphdef, tx: optax.GradientTransformation, mesh: Mesh, dropout: bool = True,
                      precision: lstm.Precision = lstm.FLOAT32):
    """The train step jitted for ``mesh``: state replicated and donated, outputs replicated; the layers
    told how many devices share the batch (``lstm.Precision.devices``: it decides their layout)."""
    replicated = NamedSharding(mesh, PartitionSpec())
    precision = precision._replace(devices=mesh.size)
    return jax.jit(make_train_step(graphdef, tx, dropout, precision), donate_argnums=(0, 1),
                   out_shardings=(replicated, replicated, replicated))


def replicate(tree, sharding: NamedSharding):
    """Every leaf copied to every device of the mesh (params and optimizer state; the same on every host)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree_util.tree_map(
        lambda leaf: jax.make_array_from_callback(np.shape(leaf), sharding, lambda index: np.asarray(leaf)[index]),
        tree)


def global_batch(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """The global batch as a sharded array, each process supplying only the rows its own devices hold.

    Every process computes the same global batch (it depends on seed and step alone), so in a multi-host run
    each one slices out its rows instead of sending the whole batch to every host.
    """
    if jax.process_count() == 1:
        return jax.device_put(array, sharding)  # asynchronous: returns before the copy is done
    index_map = sharding.addressable_devices_indices_map(array.shape)
    starts = [index[0].start or 0 for index in index_map.values()]
    stops = [array.shape[0] if index[0].stop is None else index[0].stop for index in index_map.values()]
    local = array[min(starts):max(stops)]
    return jax.make_array_from_process_local_data(sharding, local, array.shape)


@dataclass
class Progress:
    """What the training loop reports after each step."""

    step: int
    steps: int
    loss_bpc: float
    chars_per_s: float
    valid_bpc: float | None = None
    devices: int = 1  # devices the batch is split over


def _read_log(path: Path, upto_step: int) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if int(row["step"]) <= upto_step]


def _write_log(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buffer.getvalue())


def write_plot(log_path: Path, png_path: Path) -> bool:
    """PNG of train and validation bpc against steps; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = _read_log(log_path, 1 << 62)
    if not rows:
        return False
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [float(r["train_bpc"]) for r in rows], label="train")
    valid = [(int(r["step"]), float(r["valid_bpc"])) for r in rows if r["valid_bpc"] not in ("", "nan")]
    if valid:
        ax.plot(*zip(*valid), label="validation (whole tunes)")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.legend()
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic.write_bytes(png_path, buffer.getvalue())
    return True


def _valid_subset(texts: list[str], max_chars: int) -> list[str]:
    chosen, total = [], 0
    for text in texts:
        if total >= max_chars:
            break
        chosen.append(text)
        total += len(text)
    return chosen


# (field, lowest, highest) of the settings a library caller could put out of what the code takes; the CLI's
# option ranges are the same limits
_TRAIN_LIMITS = (("steps", 1, MAX_STEPS), ("batch_size", 1, MAX_BATCH_SIZE), ("seq_len", 2, MAX_SEQ_LEN),
                 ("warmup_steps", 0, MAX_STEPS), ("dropout_from", 0, MAX_STEPS), ("eval_every", 1, MAX_STEPS),
                 ("eval_chars", 1, 10**9), ("transpose", 0, 6), ("chords_after", 0, MAX_COPIES - 1),
                 ("seed", 0, SEED_MODULUS - 1))  # the CLI takes any seed modulo 2**32; numpy refused -1
_TRAIN_SWITCHES = ("reverse", "bf16_matmuls", "bf16_recurrence", "nesterov")
_MODEL_LIMITS = (("embed_dim", 1, 1 << 16), ("hidden", 1, 1 << 16), ("layers", 1, 64))


def check_configs(model_config: ModelConfig, train_config: TrainConfig) -> None:
    """A ``UsageError`` naming the first setting ``train`` cannot run with (the CLI checks its options the
    same way; a library call such as ``TrainConfig(steps=2**40)`` overflowed int32 step counters in jit)."""
    for config, limits in ((train_config, _TRAIN_LIMITS), (model_config, _MODEL_LIMITS)):
        for name, low, high in limits:
            value = getattr(config, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise UsageError(f"{name} must be a whole number from {low} to {high} (got {value!r})")
    for name, low, high in (("learning_rate", 0.0, math.inf), ("clip_norm", 0.0, math.inf),
                            ("weight_decay", 0.0, math.inf), ("min_lr_ratio", 0.0, 1.0), ("valid_share", 0.0, 1.0)):
        value = getattr(train_config, name)
        positive = name in ("learning_rate", "clip_norm")
        finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not (finite and low <= value <= high and (value > 0 or not positive)):
            raise UsageError(f"{name} must be a finite number from {low} to {high}"
                             f"{', more than 0' if positive else ''} (got {value!r})")
    if not (isinstance(model_config.dropout, (int, float)) and 0 <= model_config.dropout <= MAX_DROPOUT):
        raise UsageError(f"dropout must be from 0 to {MAX_DROPOUT} (got {model_config.dropout!r})")
    for name in _TRAIN_SWITCHES:
        if not isinstance(getattr(train_config, name), bool):  # reverse="no" trained a right-to-left model
            raise UsageError(f"{name} must be True or False (got {getattr(train_config, name)!r})")


def _check_stored(model_config: ModelConfig, train_config: TrainConfig, source, action: str) -> None:
    """``check_configs`` for the settings a checkpoint brings to ``train`` (a resumed run's, a fine-tuned
    model's shape): a ``CheckpointError`` naming the checkpoint, as the caller did not choose them. Loading such
    a checkpoint for continue, harmonize or evaluate is unaffected."""
    try:
        check_configs(model_config, train_config)
    except UsageError as exc:
        raise CheckpointError(f"{source}: cannot {action}: its stored {exc}") from None


def train(texts: list[str], out_dir: str | Path, model_config: ModelConfig, train_config: TrainConfig, *,
          resume: bool = False, devices: int | None = None, weights: list[int] | None = None,
          sources: list[str] | None = None,
          on_progress: Callable[[Progress], None] | None = None, stop_after: int | None = None,
          extend: bool = False, init_from: str | Path | None = None) -> Path:
    """Train (or resume) a model on normalized tune texts; returns the checkpoint path.

    ``stop_after`` ends this call after that many steps (a deliberate interruption, for tests);
    ``extend`` lets a resumed run take ``train_config.steps`` as its new total; ``init_from`` (a model
    folder or checkpoint) fine-tunes: a new run starts from that model's weights, shape and vocabulary,
    with a fresh optimizer and schedule (a resumed run ignores it: it continues from its own checkpoint).
    """
    check_configs(model_config, train_config)
    out = Path(out_dir)
    ckpt_path = out / checkpoint.FILE_NAME
    if not texts:
        raise InputError("no training tunes")
    if jax.process_index() == 0:  # a run killed mid-write left temp files: the writer clears them
        for name in (checkpoint.FILE_NAME, LOG_NAME, PLOT_NAME):
            atomic.remove_leftovers(out / name)
    previous = checkpoint.load(ckpt_path) if resume and ckpt_path.exists() else None
    if previous is not None:
        if previous.train_config is None:  # written by checkpoint.save, not by train: replace() crashed on it
            raise CheckpointError(f"{ckpt_path}: cannot resume: the checkpoint holds no training settings")
        # a resumed run keeps its own shapes, data order and schedule; only the step count may grow
        steps = max(train_config.steps, previous.step) if extend else previous.train_config.steps
        model_config, vocab = previous.model_config, previous.vocab
        train_config = replace(previous.train_config, steps=steps)
        _check_stored(model_config, train_config, ckpt_path, "resume")  # steps=2**40 ran into int32 in jit
        _require_vocab_covers(vocab, texts, ckpt_path)
    else:
        if ckpt_path.exists() and not resume:
            raise UsageError(f"{ckpt_path} exists: pass --resume to continue it, or choose another --out")
        if init_from is not None:
            initial = checkpoint.load(init_from)
            model_config, vocab = initial.model_config, initial.vocab
            _check_stored(model_config, train_config, init_from, "fine-tune from it")  # dropout 1 trained NaNs
            _require_vocab_covers(vocab, texts, Path(init_from), "fine-tune from it")
        else:
            # the chords-after format adds its header marker line to the text
            vocab = Vocab.from_texts(texts + ([AFTER_MARKER] if train_config.chords_after else []))
            model_config = ModelConfig(**{**model_config.to_dict(), "vocab_size": vocab.size})
    weight_of = dict(zip(texts, weights)) if weights else {}
    train_texts, valid_texts = split_holdout(texts, train_config.valid_share, salt="valid")
    if not train_texts:
        train_texts = texts
    stream = build_stream(train_texts, vocab, [weight_of.get(t, 1) for t in train_texts], train_config.transpose,
                          train_config.chords_after, train_config.reverse)
    if len(stream) <= train_config.seq_len + 1:
        raise InputError(f"training text too short: {len(stream)} characters for windows of {train_config.seq_len}")
    valid = _valid_subset(valid_texts, train_config.eval_chars)
    if train_config.reverse:
        valid = [text[::-1] for text in valid]

    mesh = make_mesh(devices, train_config.batch_size)
    writer = jax.process_index() == 0  # in a multi-host run only process 0 writes checkpoint, log and plot
    if train_config.batch_size % mesh.size:
        raise UsageError(f"batch size {train_config.batch_size} does not split over {mesh.size} devices")

    model = create_model(model_config, seed=train_config.seed)
    graphdef, params = nnx.split(model)
    tx = make_optimizer(train_config)
    opt_state = tx.init(params)
    start = 0
    if previous is not None:
        nnx.replace_by_pure_dict(params, previous.params)
        opt_state = _restore_leaves(opt_state, previous.opt_state, ckpt_path)
        start = previous.step
        if start >= train_config.steps:  # resumed with nothing left: it returned the path and said nothing
            warnings.warn(f"{ckpt_path}: this run has trained all its {train_config.steps} steps, nothing to do "
                          "(a larger --steps trains on)", AbcflaxWarning, stacklevel=2)
    elif init_from is not None:
        nnx.replace_by_pure_dict(params, initial.params)
    precision = precision_of(train_config)
    if precision != lstm.FLOAT32 and runtime.cpu_has_bf16() is False:
        flags = " ".join(flag for flag, on in (("--bf16-matmuls", precision.wide),
                                               ("--bf16-recurrence", precision.recurrence)) if on)
        warnings.warn(f"{flags}: this CPU has no AVX512-BF16 or AMX-BF16 instructions, so bfloat16 "
                      "products are emulated and usually slower than float32", AbcflaxWarning, stacklevel=2)
    # the recurrence's layout, timed on this machine for this shape (once; cached): rows or columns. A resumed
    # run keeps the layout it was trained in (the two round differently, and resuming is exact), unless
    # ABCFLAX_RECURRENCE_LAYOUT names one
    stored_columns = previous.meta.get(LAYOUT_META) if previous is not None else None
    if isinstance(stored_columns, bool) and runtime.recurrence_layout() == "measure":
        columns = stored_columns
    else:
        columns = layout.recurrence_in_columns(model_config.hidden, train_config.batch_size, train_config.seq_len,
                                               mesh, precision)
    precision = precision._replace(columns=columns)
    step_fn, params, opt_state, batch_sharding = sharded_train_step(graphdef, tx, params, opt_state, mesh,
                                                                    precision)
    # the steps before dropout_from train without dropout: a step function of their own (compiled only if
    # used; a model without dropout has only the one)
    plain_step_fn = (jitted_train_step(graphdef, tx, mesh, dropout=False, precision=precision)
                     if model_config.dropout > 0 else step_fn)
    base_key = jax.random.key(train_config.seed)
    log_path = out / LOG_NAME
    rows = _read_log(log_path, start)
    elapsed_before = float(rows[-1]["elapsed_s"]) if rows else 0.0
    meta = {"sources": sources or [], "train_tunes": len(train_texts), "valid_tunes": len(valid_texts),
            "chord_symbols": chord_inventory(train_texts), "chord_degrees": chord_degrees(train_texts),
            "chords_after": bool(train_config.chords_after) and set(AFTER_MARKER) <= set(vocab.chars)
            and contains(stream, vocab.encode(AFTER_MARKER, "marker")),
            "reverse": train_config.reverse}
    meta[LAYOUT_META] = columns
    if previous is not None and "init_from" in previous.meta:
        meta["init_from"] = previous.meta["init_from"]
    elif previous is None and init_from is not None:
        meta["init_from"] = str(init_from)

    def finite_weights(step: int) -> dict:
        """The weights to save; the divergence error when the last update overflowed them (the loss it was
        computed from was still finite)."""
        pure = nnx.to_pure_dict(params)
        if not all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree_util.tree_leaves(pure)):
            raise _diverged(step, "the weights hold NaN or Inf values", ckpt_path)
        return pure

    def save(step: int, elapsed: float, pure: dict | None = None) -> None:
        checkpoint.save(ckpt_path, checkpoint.Checkpoint(
            model_config, vocab, finite_weights(step) if pure is None else pure, train_config,
            jax.tree_util.tree_leaves(jax.device_get(opt_state)), step, {**meta, "elapsed_s": round(elapsed, 1)}))

    def fetch(step: int):
        x, y = batch_at(stream, step, train_config)
        return global_batch(x, batch_sharding), global_batch(y, batch_sharding)

    end = train_config.steps if stop_after is None else min(train_config.steps, start + stop_after)
    window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
    run_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as prefetcher:
        upcoming = prefetcher.submit(fetch, start) if start < end else None
        for step in range(start, end):
            x, y = upcoming.result()
            if step + 1 < end:
                upcoming = prefetcher.submit(fetch, step + 1)  # next batch is built while this step runs
            run_step = step_fn if step >= train_config.dropout_from else plain_step_fn
            params, opt_state, loss = run_step(params, opt_state, x, y, jax.random.fold_in(base_key, step))
            done = step + 1
            if not math.isfinite(float(loss)):
                raise _diverged(done, f"the loss is {float(loss)}", ckpt_path)
            window_loss += float(loss)
            window_steps += 1
            now = time.perf_counter()
            speed = window_steps * train_config.batch_size * train_config.seq_len / max(now - window_start, 1e-9)
            report = Progress(done, train_config.steps, float(loss) / np.log(2), speed, devices=mesh.size)
            if done % train_config.eval_every == 0 or done == train_config.steps:
                # multi-host: evaluate a host copy, so validation runs locally rather than across hosts
                trained = nnx.merge(graphdef, params if jax.process_count() == 1 else jax.device_get(params))
                report.valid_bpc = bits_per_char(trained, vocab, valid)[0] if valid else float("nan")
                elapsed = elapsed_before + (time.perf_counter() - run_start)
                rows.append({"step": done, "train_bpc": round(window_loss / window_steps / np.log(2), 4),
                             "valid_bpc": round(report.valid_bpc, 4), "chars_per_s": round(speed),
                             "elapsed_s": round(elapsed, 1)})
                if writer:
                    pure = finite_weights(done)  # a diverged run logs and saves nothing more
                    # log first: a kill between the two leaves a row that resume drops (rows after the
                    # checkpoint's step), never a checkpointed step missing from the log
                    _write_log(log_path, rows)
                    save(done, elapsed, pure)
                    write_plot(log_path, out / PLOT_NAME)
                window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
            if on_progress:
                on_progress(report)
    if writer and end == train_config.steps and not ckpt_path.exists():
        save(end, elapsed_before + time.perf_counter() - run_start)
    return ckpt_path


def _diverged(step: int, what: str, ckpt_path: Path) -> AbcflaxError:
    """The error that stops a run whose training diverged: no model of NaNs is saved (every command would
    refuse it), and an earlier checkpoint stays as it was."""
    kept = (f"the checkpoint in {ckpt_path} is the last good one" if ckpt_path.exists()
            else "no model was saved")
    return AbcflaxError(f"training diverged at step {step}: {what}; {kept} (try a lower --lr, or --clip-norm)")


def _require_vocab_covers(vocab: Vocab, texts: list[str], source: Path, action: str = "resume") -> None:
    """A resumed or fine-tuned run's corpus may only use characters of the checkpoint's vocabulary (its shapes
    are fixed)."""
    new = sorted(set().union(*map(set, texts)) - set(vocab.chars))
    if new:
        shown = "".join(new[:20])
        raise CheckpointError(f"{source}: cannot {action}: the corpus has {len(new)} character(s) the checkpoint's "
                              f"vocabulary lacks ({shown!r}); train a new run with another --out")


def _restore_leaves(template, leaves: list | None, source: Path):
    treedef = jax.tree_util.tree_structure(template)
    if leaves is None or len(leaves) != treedef.num_leaves:
        raise CheckpointError(f"{source}: optimizer state does not match this model; cannot resume")
    return jax.tree_util.tree_unflatten(treedef, [np.asarray(leaf) for leaf in leaves])


STDIN_SOURCE = "-"  # a corpus read from stdin, once
MUSIC21_PREFIX = "music21:"
_WEIGHT = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit takes "²", which int() refuses


def parse_source(spec: str) -> tuple[str, int]:
    """``path@3`` -> (``path``, 3): a source whose tunes are repeated 3 times in the training stream; a
    ``UsageError`` for a count outside 1..``MAX_COPIES``."""
    name, at, weight = spec.rpartition("@")
    if not at or not _WEIGHT.fullmatch(weight):
        return spec, 1
    if not 1 <= int(weight) <= MAX_COPIES:
        raise UsageError(f"{spec}: SOURCE@N repeats a source N times, N from 1 to {MAX_COPIES}")
    return name, int(weight)


def _load_source(source: str) -> tuple[list[str], list]:
    """(texts, problems) of one source: ``-`` (stdin), ``music21:NAME``, a file or a folder."""
    from .tunebook import load_corpus

    return load_corpus([source])


def load_training_texts(specs: list[str], holdout: float = 0.0) -> tuple[list[str], list[int], list]:
    """(texts, weights, problems) from source specs, minus the hash-chosen held-out share of every source.
    Every spec is checked before any is read (a bad one after a big corpus should not wait for it)."""
    sources = [parse_source(spec) for spec in specs]
    for spec, (source, _) in zip(specs, sources):
        if not source:  # Path("") is the current folder: "" or "@2" would train on whatever lies below it
            raise UsageError(f"{spec!r}: empty source; name a file, a folder, music21:NAME or - (stdin)")
        if source.startswith(MUSIC21_PREFIX):
            check_music21_name(source[len(MUSIC21_PREFIX):])
    if sum(source == STDIN_SOURCE for source, _ in sources) > 1:
        raise UsageError("- (stdin) is named more than once: stdin can be read only once")
    texts, weights, problems = [], [], []
    for source, weight in sources:
        found, issues = _load_source(source)
        problems.extend(issues)
        kept = split_holdout(found, holdout)[0] if holdout > 0 else found
        texts.extend(kept)
        weights.extend([weight] * len(kept))
    return texts, weights, problems


def chord_inventory(texts: list[str]) -> dict[str, int]:
    """How often each chord symbol occurs in the training tunes (harmonization draws candidates from it)."""
    from collections import Counter

    from .tunebook import QUOTED, is_chord_symbol

    counts = Counter(m.group(1) for text in texts for m in QUOTED.finditer(text) if is_chord_symbol(m.group(1)))
    return dict(counts.most_common())
