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
