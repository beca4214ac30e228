"""Sampling continuations: the prompt primes the LSTM, then a jitted ``lax.while_loop`` writes characters.

``sample_loop`` is independent of the model: it takes a ``step_fn(token_B, carry) -> (logits_BxV, carry)``
(flax's ``temperature_sample`` design), so tests drive it with a fake model. It runs a pool of tunes, each
with its own prompt, key and limits, on a fixed number of rows: when a row's tune ends, the next waiting
tune takes the row inside the loop (continuous batching), so no row idles until the longest tune ends.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import constrain, grammar, last_note, lstm, scoring
from .config import MAX_PART_BARS
from .errors import AbcflaxWarning, InputError, UsageError

PAD = -1  # in the token buffer: nothing written (row finished or never started)
MAX_CHARS_LIMIT = 20_000  # the largest max_chars accepted (as the CLI's --max-chars): bounds time and memory


def filter_logits(logits_BxV, temperature, top_k, top_p):
    """Temperature, then top-k (0 = off), then nucleus top-p (1 = off); masked entries become -inf."""
    logits = logits_BxV.astype(jnp.float32) / jnp.maximum(temperature, 1e-6)
    vocab = logits.shape[-1]
    ordered = jnp.sort(logits, axis=-1)[:, ::-1]  # the one sort (sorting is slow on CPU: ~5 us a row)
    kth = ordered[:, jnp.clip(top_k - 1, 0, vocab - 1)][:, None]
    cut_k = (top_k > 0) & (logits < kth)
    ordered = jnp.where((top_k > 0) & (ordered < kth), -jnp.inf, ordered)  # still sorted
    probs_sorted = jax.nn.softmax(ordered, axis=-1)
    before = jnp.cumsum(probs_sorted, axis=-1) - probs_sorted  # mass strictly above each entry
    cutoff = jnp.min(jnp.where(before < top_p, ordered, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(cut_k | ((top_p < 1.0) & (logits < cutoff)), -jnp.inf, logits)


def _scaled_or_filtered(masked_BxV, temperature, top_k, top_p):
    """``filter_logits``, skipping its sort at run time when neither top-k nor top-p is on (the usual case)."""
    return jax.lax.cond((top_k > 0) | (top_p < 1.0),
                        lambda m: filter_logits(m, temperature, top_k, top_p),
                        lambda m: m / jnp.maximum(temperature, 1e-6), masked_BxV)


def sample_rows(keys_B, logits_BxV):
    """One draw per row from softmax(logits) by inverse CDF: one uniform number per row, not one per
    character (a categorical draw by Gumbel noise costs a random number per vocabulary entry)."""
    top = jnp.max(logits_BxV, axis=-1, keepdims=True)
    probs = jnp.where(jnp.isfinite(logits_BxV), jnp.exp(logits_BxV - top), 0.0)
    cdf = jnp.cumsum(probs, axis=-1)
    u_B = jax.vmap(jax.random.uniform)(keys_B)
    index = jnp.sum(cdf <= (u_B * cdf[:, -1])[:, None], axis=-1)
    index = jnp.minimum(index, logits_BxV.shape[-1] - 1)
    # rounding can land on a zero-probability entry only at the very top of the CDF: take the likeliest then
    ok = jnp.take_along_axis(probs, index[:, None], axis=-1)[:, 0] > 0
    return jnp.where(ok, index, jnp.argmax(probs, axis=-1))


def choose(logits_BxV, allowed_BxV, keys_B, temperature, top_k, top_p):
    """One character per row: sampled from the filtered, masked distribution (greedy at temperature 0)."""
    masked = jnp.where(allowed_BxV, logits_BxV.astype(jnp.float32), -jnp.inf)
    filtered = _scaled_or_filtered(masked, temperature, top_k, top_p)
    # filtering can only remove candidates; if it removed all allowed ones, fall back to the mask alone
    filtered = jnp.where(jnp.any(jnp.isfinite(filtered), -1, keepdims=True), filtered, masked)
    sampled = sample_rows(keys_B, filtered)
    greedy = jnp.argmax(masked, axis=-1)
    return jnp.where(temperature <= 0, greedy, sampled).astype(jnp.int32)


class Ending(NamedTuple):
    """What the sampler needs to stop draws early (``last_note``): per tune, its watch where its prompt leaves
    it and its key, and the first and last tune index of its group (the draws of one prompt, in draw order)."""

    watch: last_note.Watch
    key: last_note.Key
    first: np.ndarray  # int32 [N]
    last: np.ndarray  # int32 [N]


def resolved_draws(done_N, tonic_N, first_N, last_N):
    """Per tune: its group's kept draw is known, which is so once a draw has finished on the tonic and every
    draw before it in its group is done (``endings.best_ending`` keeps the first such draw)."""
    not_done = jnp.cumsum(~done_N, dtype=jnp.int32)
    before = lambda counts, index: jnp.where(index > 0, counts[jnp.maximum(index - 1, 0)], 0)
    # not-done draws in [first, i): none means every earlier draw of the group is done
    earlier_open = before(not_done, jnp.arange(done_N.shape[0])) - before(not_done, first_N)
    deciding = jnp.cumsum(tonic_N & (earlier_open == 0), dtype=jnp.int32)
    return deciding[last_N] - before(deciding, first_N) > 0


def sample_loop(step_fn, carry, logits_NxV, keys_N, cstate, limits, tables, temperature, top_k, top_p, *,
                max_new: int, eos_id: int, constrained: bool, slots: int | None = None, count=None,
                ending: Ending | None = None):
    """Write up to ``max_new`` characters for each of N tunes inside one ``lax.while_loop``.

    The N tunes' primed states form a pool; ``slots`` rows (default: all N) run at a time, and when a row's
    tune ends the next waiting tune takes the row over at once (continuous batching), so a batch never idles
    while it waits for its longest tune. Only the first ``count`` tunes (default: all) are written; the rest
    are shape padding. A tune's characters depend only on its own prompt, key and limits: character i is
    drawn with ``fold_in(key, i)`` whichever row it runs in.

    With ``ending`` (constrained only), groups of draws stop early: once a group's kept draw is known
    (``resolved_draws``), its other draws stop where they are, and those not begun are skipped.

    Returns (tokens_NxM with PAD after each tune's end, finished_N: the tune wrote its end-of-tune marker,
    stuck_N: the constraints left no character, which the grammar's guarantee says cannot happen, bars_N: the
    bar lines it wrote, as the constraints count them for ``bars``; 0 without constraints), and with
    ``ending`` also stopped_N: the draw was stopped (or skipped) as its group's choice was made, and tonic_N:
    it finished on its tonic, as far as ``last_note`` can tell.
    """
    tunes = logits_NxV.shape[0]
    width = tunes if slots is None else max(1, min(slots, tunes))
    count = jnp.int32(tunes) if count is None else jnp.asarray(count, jnp.int32)
    watching = constrained and ending is not None
    rows_of = (ending.watch, ending.key) if watching else (None, None)
    pool = jax.tree_util.tree_map(jnp.asarray, (carry, logits_NxV, cstate, limits) + rows_of)
    tune_ids = jnp.arange(tunes, dtype=jnp.int32)

    def take(index_B):
        return jax.tree_util.tree_map(lambda x: x[index_B], pool)

    def where_rows(mask_B, new, old):
        return jax.tree_util.tree_map(
            lambda n, o: jnp.where(mask_B.reshape(mask_B.shape + (1,) * (n.ndim - 1)), n, o), new, old)

    def cond(loop):
        return jnp.any(loop[0] < count)

    def refill(tune_B, next_tune, freed_B, done):
        """Each freed row (some row is) takes the next waiting tune not done, in row order; (tune_B, next_tune,
        taken_B)."""
        waiting = (tune_ids >= next_tune) & (tune_ids < count) & ~done[:tunes]
        order = jnp.cumsum(waiting, dtype=jnp.int32)  # the k-th waiting tune has order k
        wanted = jnp.cumsum(freed_B, dtype=jnp.int32)  # the k-th freed row wants the k-th
        pick = jnp.searchsorted(order, wanted, side="left", method="compare_all").astype(jnp.int32)
        taken_B = freed_B & (pick < tunes) & (wanted <= order[-1])
        tune_B = jnp.where(freed_B, jnp.where(taken_B, pick, tunes), tune_B)
        last_taken = jnp.max(jnp.where(taken_B, pick, -1))
        next_tune = jnp.where(last_taken >= 0, last_taken + 1, count)
        return tune_B, next_tune, taken_B

    def body(loop):
        (tune_B, pos_B, next_tune, carry, logits, cstate, limits, watch, key, tokens, finished, stuck, bars,
         done, tonic) = loop
        active_B = tune_B < count
        if constrained:
            allowed_BxV = constrain.allowed(tables, cstate, limits)
        else:
            allowed_BxV = jnp.ones(logits.shape, bool).at[:, 0].set(False)  # never the start marker
        stuck_B = active_B & ~jnp.any(allowed_BxV, axis=-1)
        step_keys = jax.vmap(jax.random.fold_in)(keys_N[jnp.minimum(tune_B, tunes - 1)], pos_B)
        token_B = choose(logits, allowed_BxV, step_keys, temperature, top_k, top_p)
        token_B = jnp.where(stuck_B, eos_id, token_B)
        slot_of = jnp.where(active_B, tune_B, tunes)  # inactive rows write to a spare last row
        tokens = tokens.at[slot_of, jnp.minimum(pos_B, max_new - 1)].set(token_B)
        if watching:
            bar_line_B = tables.event[cstate.syn, token_B] == grammar.EV_BAR
            watch = last_note.advance(watch, key, tables.pitch_role[cstate.syn, token_B], token_B, bar_line_B,
                                      tables.chars)
        if constrained:
            cstate = constrain.advance(tables, cstate, limits, token_B)
        logits, carry = step_fn(token_B, carry)
        pos_B = pos_B + 1
        ended_B = active_B & ((token_B == eos_id) | stuck_B | (pos_B >= max_new))
        ended_at = jnp.where(ended_B, tune_B, tunes)
        finished = finished.at[ended_at].set(token_B == eos_id)
        stuck = stuck.at[ended_at].set(stuck_B)
        if constrained:
            bars = bars.at[ended_at].set(cstate.bars)
        if watching:
            done = done.at[ended_at].set(True)
            tonic = tonic.at[ended_at].set((token_B == eos_id) & last_note.on_tonic(watch, key))

        rows = (carry, logits, cstate, limits, watch, key)
        if watching:
            tune_B, pos_B, next_tune, done, rows = jax.lax.cond(
                jnp.any(ended_B), partial(free_rows, ended_B, active_B, tonic), lambda state: state,
                (tune_B, pos_B, next_tune, done, rows))
        else:
            tune_B, pos_B, next_tune, rows = refill_in_order(tune_B, pos_B, next_tune, rows, ended_B)
        carry, logits, cstate, limits, watch, key = rows
        return (tune_B, pos_B, next_tune, carry, logits, cstate, limits, watch, key, tokens, finished, stuck, bars,
                done, tonic)

    def refill_in_order(tune_B, pos_B, next_tune, rows, ended_B):
        """Each ended row takes the next waiting tune, in row order (no tune is skipped: none stops early).
        Its own code: through ``free_rows`` (its bookkeeping inside the conditional, done and tonic carried
        in the loop) a one-row step took ~11% longer (benchmarks/RESULTS.md, session 19)."""
        waiting = next_tune + jnp.cumsum(ended_B) - 1
        refill_B = ended_B & (waiting < count)
        tune_B = jnp.where(ended_B, jnp.where(refill_B, waiting, tunes), tune_B)
        next_tune = next_tune + jnp.sum(ended_B, dtype=jnp.int32)
        rows = jax.lax.cond(jnp.any(refill_B),
                            lambda r: where_rows(refill_B, take(jnp.minimum(waiting, tunes - 1)), r), lambda r: r,
                            rows)
        return tune_B, jnp.where(refill_B, 0, pos_B), next_tune, rows

    def free_rows(ended_B, active_B, tonic, state):
        """Rows whose tune ended or stopped take the next waiting tunes not done (``refill``), and a group
        whose choice is made stops: its draws still running, and those waiting are skipped."""
        tune_B, pos_B, next_tune, done, rows = state
        stop = resolved_draws(done[:tunes], tonic[:tunes], ending.first, ending.last)
        freed_B = ended_B | (active_B & stop[jnp.minimum(tune_B, tunes - 1)])
        done = done.at[:tunes].set(done[:tunes] | (stop & (tune_ids < count)))
        tune_B, next_tune, taken_B = refill(tune_B, next_tune, freed_B, done)
        rows = where_rows(taken_B, take(jnp.minimum(tune_B, tunes - 1)), rows)
        return tune_B, jnp.where(taken_B, 0, pos_B), next_tune, done, rows

    first_B = jnp.arange(width, dtype=jnp.int32)
    row_carry, row_logits, row_cstate, row_limits, row_watch, row_key = pool if width == tunes else take(first_B)
    flags = jnp.zeros(tunes + 1, bool)
    watched = flags if watching else None  # done and tonic: only an early stop needs them
    start = (jnp.where(first_B < count, first_B, tunes), jnp.zeros(width, jnp.int32), jnp.int32(width),
             row_carry, row_logits, row_cstate, row_limits, row_watch, row_key,
             jnp.full((tunes + 1, max_new), PAD, jnp.int32), flags, flags, jnp.zeros(tunes + 1, jnp.int32),
             watched, watched)
    *_, tokens, finished, stuck, bars, done, tonic = jax.lax.while_loop(cond, body, start)
    outputs = (tokens[:tunes], finished[:tunes] & ~stuck[:tunes], stuck[:tunes], bars[:tunes])
    if watching:
        # stopped: done, yet neither finished nor run into its limit (``finished`` is set only for an end marker)
        stopped = done[:tunes] & ~finished[:tunes] & ~stuck[:tunes] & (tokens[:tunes, -1] == PAD)
        return outputs + (stopped, tonic[:tunes])
    return outputs


@partial(jax.jit, static_argnames=("max_new", "eos_id", "constrained", "slots", "bf16"))
def _generate(weights, carry_P, logits_PxV, source_N, seeds_Nx2, rows_N, cstate, limits, tables, temperature,
              top_k, top_p, count, ending, *, max_new, eos_id, constrained, slots, bf16):
    """Sample N tunes from P primed prompts: tune i starts from primed row ``source_N[i]``; with ``ending``,
    groups of draws stop once their choice is made (``sample_loop``); with ``bf16``, the steps' products
    take bfloat16 kernels (``lstm.stepping_weights``)."""
    carry, logits_NxV = jax.tree_util.tree_map(lambda x: x[source_N], (carry_P, logits_PxV))
    keys_N = jax.vmap(jax.random.fold_in)(jax.random.wrap_key_data(seeds_Nx2), rows_N)
    stepping = lstm.stepping_weights(weights) if bf16 else weights
    return sample_loop(partial(lstm.step, stepping), carry, logits_NxV, keys_N, cstate, limits, tables, temperature,
                       top_k, top_p, max_new=max_new, eos_id=eos_id, constrained=constrained, slots=slots,
                       count=count, ending=ending)


MAX_BARS = 100_000  # more than any --max-chars holds; the sampler counts bars in int32


def check_sampling_options(temperature, top_k, top_p, bars, error=InputError, part_bars=None) -> None:
    """One place for the sampling-option checks; callers choose the error type they document."""
    if temperature is None or not 0 <= temperature < math.inf:  # written so that NaN fails it too
        raise error("temperature must be a finite number, 0 or more")
    if top_p is not None and not 0 < top_p <= 1:
        raise error("top_p must be in (0, 1]")
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 0):
        raise error("top_k must be an integer, 0 or more")
    if bars is not None and not 1 <= bars <= MAX_BARS:
        raise error(f"bars must be from 1 to {MAX_BARS}")
    if part_bars is not None and not (isinstance(part_bars, (int, np.integer)) and 0 <= part_bars <= MAX_PART_BARS):
        raise error(f"part_bars must be a whole number from 0 (parts of any length) to {MAX_PART_BARS}")


def warn_if_short(result: Result, which: str, *, bars: int | None, until: str, max_chars: int,
                  constrained: bool) -> None:
    """An ``AbcflaxWarning`` naming the tune (``which``; "" for a lone one) when ``max_chars`` ran out before
    it had the ``bars`` asked for: the constraints still end it properly, only shorter than asked."""
    if constrained and bars and until == "end" and result.bars < bars:
        named = f"{which}: " if which else ""
        warnings.warn(f"{named}{result.bars} of the {bars} bars asked for fit in {max_chars} characters "
                      f"(--max-chars, at most {MAX_CHARS_LIMIT})", AbcflaxWarning, stacklevel=3)


class DeadEnd(InputError):
    """The constrained decoder found no character that keeps a tune valid; ``indices``: those tunes (0-based)."""

    def __init__(self, message: str, indices: list[int]):
        super().__init__(message)
        self.indices = indices


@dataclass(frozen=True)
class Request:
    """One continuation to write."""

    prompt: str  # the tune so far (header + any body)
    seed: int = 0  # with ``row``, decides the random stream
    row: int = 0  # position in a batch job, so each tune of a batch is reproducible on its own
    sealed: bool = False  # the prompt ends in a pitch that must not change (the note a tie reaches): no octave mark
    draw: int = 0  # which of several independent samples of the same (seed, row); 0 is the one sampled alone


@dataclass(frozen=True)
class Result:
    """A finished continuation."""

    text: str  # the whole tune: prompt + continuation
    generated: int  # characters written
    finished: bool  # ended with the end-of-tune marker (else it hit max_chars)
    bars: int = 0  # bar lines written, as ``bars`` counts them (0 without constraints)


# new bars a part may take under --until section (without --bars) before it is closed: inside an open repeat
# the part ends only at :|, and a model lost in a prompt wrote 70 bars before writing one
SECTION_MAX_BARS = 16


def _limits(places, max_chars, bars, until, min_bars, part_bars=None) -> constrain.Limits:
    count = len(places)
    bar_len = np.array([p.bar_len for p in places], np.int32)
    target = bars or (SECTION_MAX_BARS if until == "section" else 0)
    return constrain.Limits(
        bar_len, np.array([constrain.reserve_for(b) for b in bar_len], np.int32),
        np.full(count, max_chars, np.int32), np.full(count, target, np.int32),
        np.full(count, bars or min_bars, np.int32),  # asked for N bars, a tune does not end before them
        np.full(count, int(until == "section"), np.int32), np.array([p.values for p in places], np.int32),
        np.array([p.features for p in places], np.int32),
        *np.array([constrain.part_limits(p, part_bars) for p in places], np.int32).reshape(count, 2).T)


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


@lru_cache(maxsize=4)
def grammar_tables(vocab_chars: tuple[str, ...]):
    """The constrained decoder's tables for a vocabulary, read (or built) once per process."""
    from .loading import grammar_folders

    return grammar.load_or_build(vocab_chars, grammar_folders())


@lru_cache(maxsize=4)
def _device_grammar(vocab_chars: tuple[str, ...]) -> constrain.Tables:
    return constrain.device_tables(grammar_tables(vocab_chars), vocab_chars)


def _seed_data(seeds: list[int], draws: list[int]) -> np.ndarray:
    """Key data of ``jax.random.key(seed)`` for each seed, built on the host as JAX builds it (high word 0,
    low word the seed modulo 2**32): eager ``key()`` calls would each compile a small program at startup.
    A later draw of the same seed puts its number in the high word: another key, and draw 0 is
    ``key(seed)`` itself. ``_generate`` turns row i's into ``fold_in(key, rows[i])``."""
    return np.array([[draw % 2**32, seed % 2**32] for seed, draw in zip(seeds, draws)], np.uint32).reshape(-1, 2)


# rows the sampler runs at least, with bfloat16 kernels: a 1- or 2-row product takes another kernel, whose
# rounding differs (measured: rows of 3 and more round alike, 1 and 2 do not)
BF16_MIN_ROWS = 4


@dataclass
class Pending:
    """A dispatched generation: the device works on it while the caller does other things."""

    prompts: list[str]  # each tune's prompt, as continued
    arrays: tuple  # (tokens_NxM, finished_N, stuck_N, bars_N[, stopped_N, tonic_N]), still being computed
    decode: Callable[[list[int]], str]
    tune_of: list[int]  # the tune each request is a draw of (several draws of one tune are one tune)
    # samples requests (by index) again without stopping draws early: for a tune whose draws were stopped on
    # a verdict the host does not share (``last_note`` is cautious, so this should not happen)
    rerun: Callable[[list[int]], list[Result]] | None = None

    def results(self) -> list[Result]:
        tokens, finished, stuck, bars = (np.asarray(a) for a in self.arrays[:4])  # waits for the device
        stuck_at = [index for index in range(len(self.prompts)) if stuck[index]]
        if stuck_at:
            row = tokens[stuck_at[0]]
            ids = row[row >= 0].tolist()
            tune, written = self.tune_of[stuck_at[0]] + 1, self.decode(ids[:-1])
            if "|" not in written:  # stuck inside the prompt's own last bar (one it began that cannot end)
                message = (f"the constrained decoder cannot finish tune {tune}'s last bar from where the prompt "
                           "stops (end the prompt at a bar line, or continue without the constraints)")
            else:
                message = (f"constrained decoding found no valid character for tune {tune} "
                           f"after {written[-40:]!r}: please report this prompt")
            raise DeadEnd(message, sorted({self.tune_of[index] for index in stuck_at}))
        results = []
        for index, prompt in enumerate(self.prompts):
            row = tokens[index]
            ids = row[row >= 0].tolist()
            text = prompt + self.decode(ids)
            if not text.endswith("\n"):
                text += "\n"
            results.append(Result(text, len(ids), bool(finished[index]), int(bars[index])))
        if len(self.arrays) > 4:
            self._check_stops(results, np.asarray(self.arrays[4]), np.asarray(self.arrays[5]))
        return results

    def _check_stops(self, results: list[Result], stopped, tonic) -> None:
        """Where a tune's draws were stopped, the draw that decided it must end on the tonic as the host reads
        it too; else that tune is sampled again in full (its draws come out the same: their keys are their own)."""
        from .endings import TONIC, ending_rank

        draws_of: dict[int, list[int]] = {}
        for index, owner in enumerate(self.tune_of):
            draws_of.setdefault(owner, []).append(index)
        redo = []
        for tune in sorted({self.tune_of[index] for index in np.flatnonzero(stopped)}):
            draws = draws_of[tune]
            deciding = next((i for i in draws if tonic[i] and results[i].finished), None)
            if deciding is None or ending_rank(results[deciding].text) != TONIC:
                redo.extend(draws)
        if redo and self.rerun is not None:
            for index, result in zip(redo, self.rerun(redo)):
                results[index] = result


def generate(model, requests: list[Request], **options) -> list[Result]:
    """Continue every request's prompt in one batched, jitted run (see ``dispatch`` for the options)."""
    return dispatch(model, requests, **options).results()


def dispatch(model, requests: list[Request], *, max_chars: int = 1200, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, bars: int | None = None, until: str = "end", min_bars: int = 4,
             constrained: bool = True, slots: int | None = None, stop_early: bool = True,
             part_bars: int | None = None) -> Pending:
    """Start continuing every request's prompt; ``slots`` rows run at once (default: one per request).

    ``part_bars``: every part ends after this many bars (0: anywhere; None: the prompt's own length, else 8;
    see ``constrain.part_limits``). Several draws of one prompt (consecutive requests, draw 0 first) stop
    once the one ``endings.best_ending`` keeps is known, unless ``stop_early`` is False (the kept draws are
    the same).

    Returns at once with the work queued on the device (JAX dispatches asynchronously);
    ``Pending.results()`` waits for it.
    """
    from .runtime import bf16_stepping, enable_compile_cache

    enable_compile_cache()
    if constrained and max_chars < constrain.MIN_MAX_CHARS:
        raise UsageError(f"max_chars {max_chars} is too small for a constrained continuation "
                         f"(at least {constrain.MIN_MAX_CHARS})")
    if until not in ("end", "section"):
        raise UsageError(f"until must be 'end' or 'section', not {until!r}")
    if slots is not None and slots < 1:
        raise UsageError("slots must be at least 1")
    vocab = model.vocab
    for request in requests:
        vocab.encode(request.prompt, "prompt")  # unknown characters: an error naming line:column, first
    suffixes, places = [""] * len(requests), []
    tables = None
    if constrained:
        host_tables = grammar_tables(vocab.chars)
        tables = _device_grammar(vocab.chars)
        placed = {}  # several draws of one prompt are placed once
        for index, request in enumerate(requests):
            key = (request.prompt, request.sealed)
            if key not in placed:
                placed[key] = constrain.place_prompt(request.prompt, host_tables, vocab.chars, request.sealed)
            places.append(placed[key])
            suffixes[index] = placed[key].text_suffix
    prompts = [r.prompt + s for r, s in zip(requests, suffixes)]
    bf16 = bf16_stepping()
    # few shapes, few compiles; filler tunes are never written. XLA's bfloat16 product rounds a row of one or
    # two differently from the same row among more, so a tune alone would not be the first of its draws
    smallest_rows = BF16_MIN_ROWS if bf16 else 1
    batch = scoring.bucket(len(prompts), smallest=smallest_rows)
    filler = batch - len(prompts)
    # the model reads each distinct prompt once; its rows start from that one primed state
    distinct = list(dict.fromkeys(prompts))
    rows = [np.concatenate([[vocab.bos_id], vocab.encode(p, "prompt")]).astype(np.int32) for p in distinct]
    primed = scoring.bucket(len(rows), smallest=1)
    _, carry, logits = scoring.prime(model.weights, rows + [rows[0]] * (primed - len(rows)))
    position = {prompt: index for index, prompt in enumerate(distinct)}
    source = np.array([position[p] for p in prompts] + [0] * filler, np.int32)
    seed_data = _seed_data([r.seed for r in requests] + [0] * filler, [r.draw for r in requests] + [0] * filler)
    row_ids = np.array([r.row for r in requests] + [0] * filler, np.int32)
    if constrained:
        places_padded = places + [places[0]] * filler
        cstate = constrain.start_state(places_padded)
        limits = _limits(places_padded, max_chars, bars, until, min_bars, part_bars)
    else:
        cstate = limits = None
    tune_of = (np.cumsum([r.draw == 0 for r in requests]) - 1).tolist()  # a draw 0 starts the next tune
    ending = None
    if constrained and stop_early and len(set(tune_of)) < len(requests):
        ending = _ending(prompts, places, tune_of, host_tables, batch)
    width = batch if slots is None else scoring.bucket(min(slots, batch), smallest=smallest_rows)
    source, seed_data, row_ids, cstate, limits, ending = shard_rows(
        (source, seed_data, row_ids, cstate, limits, ending), batch)
    arrays = _generate(
        model.weights, carry, logits, source, seed_data, row_ids, cstate, limits, tables, np.float32(temperature),
        np.int32(min(top_k or 0, vocab.size)), np.float32(top_p if top_p is not None else 1.0),
        np.int32(len(prompts)), ending, max_new=int(max_chars), eos_id=vocab.eos_id, constrained=constrained,
        slots=width, bf16=bf16)
    options = dict(max_chars=max_chars, temperature=temperature, top_k=top_k, top_p=top_p, bars=bars, until=until,
                   min_bars=min_bars, constrained=constrained, slots=slots, stop_early=False, part_bars=part_bars)
    rerun = lambda indices: dispatch(model, [requests[i] for i in indices], **options).results()
    return Pending(prompts, arrays, vocab.decode, tune_of, rerun)


def _ending(prompts: list[str], places: list, tune_of: list[int], host_tables, batch: int) -> Ending:
    """The early-stop inputs of ``sample_loop``: each tune's watch and key where its prompt leaves them (one
    reading per distinct prompt) and its group of draws, padded to ``batch`` rows."""
    starts = {}
    for prompt, place in zip(prompts, places):
        if prompt not in starts:
            starts[prompt] = last_note.for_prompt(prompt, int(host_tables.phase[place.syn]))
    rows = [starts[prompt] for prompt in prompts]
    rows += [rows[0]] * (batch - len(rows))
    owners = np.array(tune_of + list(range(tune_of[-1] + 1, tune_of[-1] + 1 + batch - len(tune_of))))
    first = np.searchsorted(owners, owners, side="left").astype(np.int32)
    last = (np.searchsorted(owners, owners, side="right") - 1).astype(np.int32)
    return Ending(last_note.stack([watch for watch, _ in rows]), last_note.stack([key for _, key in rows]), first,
                  last)
