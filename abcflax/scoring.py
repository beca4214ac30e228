"""Run the model over given characters, batched: prime prompts, and score candidate continuations.

Rows of a batch may have different lengths: a mask freezes a row's state once its own characters
run out, so short rows are never padded into the music. Lengths are rounded up to a power of two so
that a handful of compiled shapes serve every call.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import lstm


def bucket(n: int, smallest: int = 8) -> int:
    """``n`` rounded up to a power of two (at least ``smallest``): few shapes, few compiles."""
    size = smallest
    while size < n:
        size *= 2
    return size


@jax.jit
def advance(weights, carry, logits_BxV, ids_BxT, mask_BxT):
    """Feed ``ids_BxT`` (where ``mask_BxT``) through the model one step at a time.

    Returns (log-probability of the fed characters, carry after them, logits for the next character),
    per row. ``logits_BxV`` are the logits that predict each row's first fed character.
    """
    def step(state, inputs):
        total_B, carry, logits_BxV = state
        ids_B, mask_B = inputs
        logp_BxV = jax.nn.log_softmax(logits_BxV.astype(jnp.float32))
        total_B = total_B + jnp.where(mask_B, jnp.take_along_axis(logp_BxV, ids_B[:, None], 1)[:, 0], 0.0)
        new_logits, new_carry = lstm.step(weights, ids_B, carry)
        keep = mask_B[:, None]
        carry = jax.tree_util.tree_map(lambda new, old: jnp.where(keep, new, old), new_carry, carry)
        logits_BxV = jnp.where(keep, new_logits, logits_BxV)
        return (total_B, carry, logits_BxV), None

    start = (jnp.zeros(ids_BxT.shape[0], jnp.float32), carry, logits_BxV)
    (total_B, carry, logits_BxV), _ = jax.lax.scan(step, start, (ids_BxT.T, mask_BxT.T))
    return total_B, carry, logits_BxV


@jax.jit
def trace(weights, carry, logits_1xV, ids_T):
    """Feed one row's ``ids_T``, keeping the carry and next-character logits after every character:
    (carries, each leaf T x 1 x H; logits, T x 1 x V). One pass gives the state at any point of a text."""
    def step(state, ids_1):
        carry, _ = state
        logits, carry = lstm.step(weights, ids_1, carry)
        return (carry, logits), (carry, logits)

    _, (carries, logits) = jax.lax.scan(step, (carry, logits_1xV), ids_T[:, None])
    return carries, logits


def states_at(weights, carry, logits_1xV, ids: np.ndarray, cuts) -> tuple:
    """(carry, logits) with one row per cut: the state after feeding ``ids[:cut]`` to the one-row state
    (``carry``, ``logits_1xV``); one pass over ``ids`` (padded to a power of two: few compiled shapes)."""
    width = bucket(max(len(ids), 1))
    padded = np.zeros(width, np.int32)
    padded[:len(ids)] = ids
    carries, logits = trace(weights, carry, logits_1xV, padded)
    # cut 0 is the state before any character: put it in front of the per-character states
    index = jnp.asarray(np.asarray(cuts, np.int32))
    gather = lambda start, along: jnp.concatenate([start[None], along], axis=0)[index][:, 0]
    return jax.tree_util.tree_map(gather, carry, carries), gather(logits_1xV, logits)


def pad_rows(rows: list[np.ndarray], min_len: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Stack id rows of different lengths into (ids_BxT, mask_BxT), T a power of two."""
    width = bucket(max((len(r) for r in rows), default=1), min_len)
    ids = np.zeros((len(rows), width), np.int32)
    mask = np.zeros((len(rows), width), bool)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
        mask[i, :len(row)] = True
    return ids, mask


def initial_state(weights, batch: int):
    """Carry and next-character logits before anything has been fed (all zeros).

    Host arrays: eager ``jnp.zeros`` would compile a program on first use (startup latency)."""
    hidden = weights.layers[0][1].shape[0]
    zeros = np.zeros((batch, hidden), np.float32)
    carry = tuple((zeros, zeros) for _ in weights.layers)
    return carry, np.zeros((batch, weights.head_bias.shape[0]), np.float32)


def prime(weights, rows: list[np.ndarray]):
    """(log-probs, carry, next logits) after feeding each row from the zero state.

    Rows normally start with the start-of-tune marker, whose own log-prob (predicted from nothing)
    should be ignored by the caller.
    """
    carry, logits = initial_state(weights, len(rows))
    ids, mask = pad_rows(rows)
    return advance(weights, carry, logits, ids, mask)


def score_segments(weights, carry, logits_BxV, rows: list[np.ndarray]):
    """Continue each batch row by its own segment of ids: (log-prob of segment, new carry, next logits)."""
    ids, mask = pad_rows(rows)
    return advance(weights, carry, logits_BxV, ids, mask)


def take_rows(tree, index):
    """Select batch rows ``index`` from a carry/logits pytree (beam reordering)."""
    index = jnp.asarray(index)
    return jax.tree_util.tree_map(lambda x: x[index], tree)
