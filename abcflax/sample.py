"""Sampling continuations: the prompt primes the LSTM, then a jitted ``lax.while_loop`` writes characters.

``sample_loop`` is independent of the model: it takes a ``step_fn(token_B, carry) -> (logits_BxV, carry)``
(flax's ``temperature_sample`` design), so tests drive it with a fake model. Rows of a batch are separate
tunes with their own prompt, key and limits; a row that has finished stops changing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from . import constrain, grammar, scoring
from .errors import InputError, UsageError

PAD = -1  # in the token buffer: nothing written (row finished or never started)


def filter_logits(logits_BxV, temperature, top_k, top_p):
    """Temperature, then top-k (0 = off), then nucleus top-p (1 = off); masked entries become -inf."""
    logits = logits_BxV.astype(jnp.float32) / jnp.maximum(temperature, 1e-6)
    vocab = logits.shape[-1]
    ordered = jnp.sort(logits, axis=-1)[:, ::-1]
    kth = ordered[:, jnp.clip(top_k - 1, 0, vocab - 1)][:, None]
    logits = jnp.where((top_k > 0) & (logits < kth), -jnp.inf, logits)
    probs_sorted = jax.nn.softmax(jnp.sort(logits, axis=-1)[:, ::-1], axis=-1)
    before = jnp.cumsum(probs_sorted, axis=-1) - probs_sorted  # mass strictly above each entry
    keep_sorted = before < top_p
    cutoff = jnp.min(jnp.where(keep_sorted, jnp.sort(logits, axis=-1)[:, ::-1], jnp.inf), axis=-1, keepdims=True)
    return jnp.where((top_p < 1.0) & (logits < cutoff), -jnp.inf, logits)


def choose(logits_BxV, allowed_BxV, keys_B, temperature, top_k, top_p):
    """One character per row: sampled from the filtered, masked distribution (greedy at temperature 0)."""
    masked = jnp.where(allowed_BxV, logits_BxV.astype(jnp.float32), -jnp.inf)
    filtered = filter_logits(masked, temperature, top_k, top_p)
    # filtering can only remove candidates; if it removed all allowed ones, fall back to the mask alone
    filtered = jnp.where(jnp.any(jnp.isfinite(filtered), -1, keepdims=True), filtered, masked)
    sampled = jax.vmap(jax.random.categorical)(keys_B, filtered)
    greedy = jnp.argmax(masked, axis=-1)
    return jnp.where(temperature <= 0, greedy, sampled).astype(jnp.int32)


def sample_loop(step_fn, carry, logits_BxV, keys_B, cstate, limits, tables, temperature, top_k, top_p, *,
                max_new: int, eos_id: int, constrained: bool):
    """Write up to ``max_new`` characters per row inside ``lax.while_loop``.

    Returns (tokens_BxN with PAD after each row's end, finished_B: the row wrote its end-of-tune marker,
    stuck_B: the constraints left no character, which the grammar's guarantee says cannot happen).
    """
    batch = logits_BxV.shape[0]

    def cond(loop):
        index, *_, done_B, _ = loop
        return (index < max_new) & ~jnp.all(done_B)

    def body(loop):
        index, carry, logits, cstate, tokens, done_B, stuck_B = loop
        if constrained:
            allowed_BxV = constrain.allowed(tables, cstate, limits)
        else:
            allowed_BxV = jnp.ones(logits.shape, bool).at[:, 0].set(False)  # never the start marker
        stuck_B = stuck_B | (~done_B & ~jnp.any(allowed_BxV, axis=-1))
        step_keys = jax.vmap(lambda k: jax.random.fold_in(k, index))(keys_B)
        token_B = choose(logits, allowed_BxV, step_keys, temperature, top_k, top_p)
        token_B = jnp.where(stuck_B, eos_id, token_B)
        tokens = tokens.at[:, index].set(jnp.where(done_B, PAD, token_B))
        if constrained:
            moved = constrain.advance(tables, cstate, limits, token_B)
            cstate = jax.tree_util.tree_map(lambda new, old: jnp.where(done_B, old, new), moved, cstate)
        new_logits, new_carry = step_fn(token_B, carry)
        keep = done_B[:, None]
        carry = jax.tree_util.tree_map(lambda new, old: jnp.where(keep, old, new), new_carry, carry)
        logits = jnp.where(keep, logits, new_logits)
        done_B = done_B | (token_B == eos_id)
        return index + 1, carry, logits, cstate, tokens, done_B, stuck_B

    tokens = jnp.full((batch, max_new), PAD, jnp.int32)
    start = (0, carry, logits_BxV, cstate, tokens, jnp.zeros(batch, bool), jnp.zeros(batch, bool))
    _, _, _, _, tokens, done_B, stuck_B = jax.lax.while_loop(cond, body, start)
    return tokens, done_B & ~stuck_B, stuck_B


@partial(jax.jit, static_argnames=("graphdef", "max_new", "eos_id", "constrained"))
def _generate(graphdef, params, carry, logits_BxV, keys_B, cstate, limits, tables, temperature, top_k, top_p, *,
              max_new, eos_id, constrained):
    model = nnx.merge(graphdef, params)
    return sample_loop(model.step, carry, logits_BxV, keys_B, cstate, limits, tables, temperature, top_k, top_p,
                       max_new=max_new, eos_id=eos_id, constrained=constrained)


def check_sampling_options(temperature, top_k, top_p, bars, error=InputError) -> None:
    """One place for the sampling-option checks; callers choose the error type they document."""
    if temperature is None or temperature < 0:
        raise error("temperature must be 0 or more")
    if top_p is not None and not 0 < top_p <= 1:
        raise error("top_p must be in (0, 1]")
    if top_k is not None and top_k < 0:
        raise error("top_k must be 0 or more")
    if bars is not None and bars < 1:
        raise error("bars must be at least 1")


@dataclass(frozen=True)
class Request:
    """One continuation to write."""

    prompt: str  # the tune so far (header + any body)
    seed: int = 0  # with ``row``, decides the random stream
    row: int = 0  # position in a batch job, so each tune of a batch is reproducible on its own


@dataclass(frozen=True)
class Result:
    """A finished continuation."""

    text: str  # the whole tune: prompt + continuation
    generated: int  # characters written
    finished: bool  # ended with the end-of-tune marker (else it hit max_chars)


def _limits(places, max_chars, bars, until, min_bars) -> constrain.Limits:
    count = len(places)
    bar_len = np.array([p.bar_len for p in places], np.int32)
    return constrain.Limits(
        bar_len, np.array([constrain.reserve_for(b) for b in bar_len], np.int32),
        np.full(count, max_chars, np.int32), np.full(count, bars or 0, np.int32),
        np.full(count, 0 if bars else min_bars, np.int32), np.full(count, int(until == "section"), np.int32))


def shard_rows(tree, batch: int):
    """Split per-row arrays over every visible device on a ``data`` axis (data-parallel sampling).

    Rows are independent, so XLA runs each device's share of the batch on its own device; the loop's
    "all rows done?" test is the only cross-device reduction. One device, or a batch that does not divide,
    leaves ``tree`` as it is; parameters and grammar tables stay unsharded (jit replicates them).
    """
    devices = jax.local_devices()  # this process's devices: the rows are this process's own
    if len(devices) < 2 or batch % len(devices):
        return tree
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    rows = NamedSharding(Mesh(np.array(devices), ("data",)), PartitionSpec("data"))
    return jax.device_put(tree, rows)


def grammar_tables(vocab_chars: tuple[str, ...]):
    from .loading import grammar_folders

    return grammar.load_or_build(vocab_chars, grammar_folders())


def generate(model, requests: list[Request], *, max_chars: int = 1200, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, bars: int | None = None, until: str = "end", min_bars: int = 4,
             constrained: bool = True) -> list[Result]:
    """Continue every request's prompt in one batched, jitted run."""
    from .runtime import enable_compile_cache

    enable_compile_cache()
    if constrained and max_chars < constrain.MIN_MAX_CHARS:
        raise UsageError(f"max_chars {max_chars} is too small for a constrained continuation "
                         f"(at least {constrain.MIN_MAX_CHARS})")
    if until not in ("end", "section"):
        raise UsageError(f"until must be 'end' or 'section', not {until!r}")
    vocab = model.vocab
    for request in requests:
        vocab.encode(request.prompt, "prompt")  # unknown characters: an error naming line:column, first
    suffixes, places = [""] * len(requests), []
    tables = None
    if constrained:
        host_tables = grammar_tables(vocab.chars)
        tables = constrain.device_tables(host_tables)
        for index, request in enumerate(requests):
            place = constrain.place_prompt(request.prompt, host_tables, vocab.chars)
            places.append(place)
            suffixes[index] = place.text_suffix
    prompts = [r.prompt + s for r, s in zip(requests, suffixes)]
    rows = [np.concatenate([[vocab.bos_id], vocab.encode(p, "prompt")]).astype(np.int32) for p in prompts]
    batch = scoring.bucket(len(rows), smallest=1)
    padded = rows + [rows[0]] * (batch - len(rows))  # filler rows are dropped afterwards
    _, carry, logits = scoring.prime(model.module, padded)
    keys = jnp.stack([jax.random.fold_in(jax.random.key(r.seed), r.row) for r in requests]
                     + [jax.random.key(0)] * (batch - len(rows)))
    if constrained:
        places_padded = places + [places[0]] * (batch - len(rows))
        cstate = constrain.State(np.array([p.syn for p in places_padded], np.int32),
                                 np.array([p.ticks for p in places_padded], np.int32),
                                 np.zeros(batch, np.int32), np.zeros(batch, np.int32), np.zeros(batch, bool))
        limits = _limits(places_padded, max_chars, bars, until, min_bars)
    else:
        cstate = limits = None
    graphdef, params = nnx.split(model.module)
    carry, logits, keys, cstate, limits = shard_rows((carry, logits, keys, cstate, limits), batch)
    tokens, finished, stuck = _generate(
        graphdef, params, carry, logits, keys, cstate, limits, tables, jnp.float32(temperature),
        jnp.int32(top_k or 0), jnp.float32(top_p if top_p is not None else 1.0),
        max_new=int(max_chars), eos_id=vocab.eos_id, constrained=constrained)
    tokens, finished, stuck = np.asarray(tokens), np.asarray(finished), np.asarray(stuck)
    results = []
    for index, prompt in enumerate(prompts):
        ids = [t for t in tokens[index] if t >= 0]
        if stuck[index]:
            raise InputError(f"constrained decoding found no valid character for tune {index + 1} after "
                             f"{vocab.decode(ids[:-1])[-40:]!r}: please report this prompt")
        text = prompt + vocab.decode(ids)
        if not text.endswith("\n"):
            text += "\n"
        results.append(Result(text, len(ids), bool(finished[index])))
    return results
