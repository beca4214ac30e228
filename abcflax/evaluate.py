"""Bits per character over whole tunes: teacher forcing, the LSTM state carried through each tune.

Every character of a tune is predicted from all the characters before it, starting from the
start-of-tune marker; the end-of-tune marker is predicted too and counted as a character.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .vocab import Vocab

EVAL_BATCH = 16  # tunes scored side by side
EVAL_CHUNK = 256  # characters per jitted call; the carry crosses chunks, so tunes of any length fit


@partial(jax.jit, static_argnums=0)
def _chunk_nll(graphdef, params, carry, inputs_BxT, targets_BxT, mask_BxT):
    model = nnx.merge(graphdef, params)
    logits, carry = model(inputs_BxT, carry)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    nll = -jnp.take_along_axis(logp, targets_BxT[..., None], axis=-1)[..., 0]
    return carry, jnp.sum(nll * mask_BxT)


def tunes_nll(model, vocab: Vocab, texts: list[str]) -> tuple[float, int]:
    """Total negative log-likelihood (nats) and the number of characters scored."""
    graphdef, params = nnx.split(model)
    encoded = [np.concatenate([[vocab.bos_id], vocab.encode(t, "tune"), [vocab.eos_id]]) for t in texts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    total, count = 0.0, 0
    for start in range(0, len(order), EVAL_BATCH):
        group = [encoded[i] for i in order[start:start + EVAL_BATCH]]
        longest = max(len(g) for g in group) - 1
        padded_len = math.ceil(longest / EVAL_CHUNK) * EVAL_CHUNK
        inputs = np.zeros((EVAL_BATCH, padded_len), np.int32)
        targets = np.zeros((EVAL_BATCH, padded_len), np.int32)
        mask = np.zeros((EVAL_BATCH, padded_len), np.float32)
        for row, ids in enumerate(group):
            n = len(ids) - 1
            inputs[row, :n], targets[row, :n], mask[row, :n] = ids[:-1], ids[1:], 1.0
        carry = model.init_carry(EVAL_BATCH)
        for offset in range(0, padded_len, EVAL_CHUNK):
            window = slice(offset, offset + EVAL_CHUNK)
            carry, nll = _chunk_nll(graphdef, params, carry, inputs[:, window], targets[:, window], mask[:, window])
            total += float(nll)
        count += int(mask.sum())
    return total, count


def bits_per_char(model, vocab: Vocab, texts: list[str]) -> tuple[float, int]:
    """(bits per character, characters scored) over whole tunes."""
    if not texts:
        return float("nan"), 0
    total, count = tunes_nll(model, vocab, texts)
    return total / count / math.log(2), count
