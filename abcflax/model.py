"""The char-LSTM in Flax NNX: embedding, stacked LSTM layers, dropout, output head.

The model does only math, and that math lives in ``lstm`` as pure functions of a weights pytree (so sampling
and scoring run without importing flax.nnx); this module holds the parameters and adds dropout for training.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from . import lstm
from .config import ModelConfig
from .lstm import Carry, lstm_layer, lstm_scan


def _dropout(x, rate: float, key):
    """Inverted dropout whose keep mask compares one random byte per element with the rate rounded to 256ths
    (0.25 is exact; a rate of 1/512 or less drops nothing, one of 511/512 or more everything). Four elements
    share each 32-bit draw: the generator's cost is per draw, and one draw per element made the masks a
    tenth of the default shape's training step."""
    drop_below = round(rate * 256)
    if key is None or drop_below <= 0:
        return x
    if drop_below >= 256:
        return jnp.zeros_like(x)
    *lead, width = x.shape
    words = jax.random.bits(key, (*lead, -(-width // 4)), jnp.uint32)  # the last axis: never one split over devices
    random_bytes = jax.lax.bitcast_convert_type(words, jnp.uint8).reshape(*lead, -1)[..., :width]
    return jnp.where(random_bytes >= drop_below, x * (256 / (256 - drop_below)), 0.0)


class LSTMLayer(nnx.Module):
    """One LSTM layer; gates in PyTorch order (input, forget, cell, output)."""

    def __init__(self, in_dim: int, hidden: int, *, rngs: nnx.Rngs, zero_init: bool = False):
        scale = 1.0 / jnp.sqrt(hidden)
        if zero_init:
            self.w_ih = nnx.Param(jnp.zeros((in_dim, 4 * hidden)))
            self.w_hh = nnx.Param(jnp.zeros((hidden, 4 * hidden)))
        else:
            self.w_ih = nnx.Param(jax.random.uniform(rngs.params(), (in_dim, 4 * hidden), minval=-scale, maxval=scale))
            self.w_hh = nnx.Param(nnx.initializers.orthogonal()(rngs.params(), (hidden, 4 * hidden)))
        # forget-gate bias 1 so early training remembers rather than forgets
        self.bias = nnx.Param(jnp.zeros((4 * hidden,)).at[hidden:2 * hidden].set(1.0))
        self.hidden = hidden

    def __call__(self, xproj_TxBx4H, carry, precision: lstm.Precision = lstm.FLOAT32):
        """The recurrence over projected inputs (time-major in and out: no transposes of the big arrays)."""
        c_BxH, h_BxH = carry
        h_TxBxH, c_BxH, h_BxH = lstm_scan(xproj_TxBx4H, self.w_hh[...], c_BxH, h_BxH, precision)
        return h_TxBxH, (c_BxH, h_BxH)

    def on_inputs(self, x_TxBxI, carry, precision: lstm.Precision = lstm.FLOAT32):
        """Projection and recurrence together (``lstm.lstm_layer``, whose backward pass suits XLA's layouts)."""
        c_BxH, h_BxH = carry
        h_TxBxH, c_BxH, h_BxH = lstm_layer(x_TxBxI, self.w_ih[...], self.bias[...], self.w_hh[...], c_BxH, h_BxH,
                                           precision)
        return h_TxBxH, (c_BxH, h_BxH)


class CharLSTM(nnx.Module):
    """Next-character model over ABC text."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs, zero_init: bool = False):
        self.config = config
        zeros = {"embedding_init": nnx.initializers.zeros} if zero_init else {}
        self.embed = nnx.Embed(config.vocab_size, config.embed_dim, rngs=rngs, **zeros)
        sizes = [config.embed_dim] + [config.hidden] * config.layers
        self.layers = nnx.List([LSTMLayer(sizes[i], sizes[i + 1], rngs=rngs, zero_init=zero_init)
                                for i in range(config.layers)])
        self.head = nnx.Linear(config.hidden, config.vocab_size, rngs=rngs,
                               **({"kernel_init": nnx.initializers.zeros} if zero_init else {}))

    def init_carry(self, batch: int) -> Carry:
        zeros = jnp.zeros((batch, self.config.hidden), jnp.float32)
        return tuple((zeros, zeros) for _ in range(self.config.layers))

    def __call__(self, tokens_BxT, carry: Carry | None = None, *, dropout_key=None,
                 precision: lstm.Precision = lstm.FLOAT32):
        """Logits for every position, and the carry after the last one. ``precision``: which of the layers'
        matmuls take bfloat16 operands (``TrainConfig.bf16_matmuls``, ``TrainConfig.bf16_recurrence``)."""
        if carry is None:
            carry = self.init_carry(tokens_BxT.shape[0])
        keys = [None] * (self.config.layers + 1)
        if dropout_key is not None:
            keys = list(jax.random.split(dropout_key, self.config.layers + 1))
        tokens_TxB = tokens_BxT.T
        if keys[0] is not None and self.config.dropout > 0.0:
            embedded_TxBxE = _dropout(self.embed(tokens_TxB), self.config.dropout, keys[0])
            return self._layers_and_head(embedded_TxBxE, carry, keys[1:], first_projected=False, precision=precision)
        # no dropout on the embeddings: project each vocabulary entry once instead of each position
        first = self.layers[0]
        xproj_TxBx4H = lstm.token_projection(self.embed.embedding[...], first.w_ih[...], first.bias[...], tokens_TxB)
        return self._layers_and_head(xproj_TxBx4H, carry, keys[1:], precision=precision)

    def forward_embedded(self, x_BxTxE, carry: Carry, dropout_keys=None):
        """The layers and head on already-embedded inputs (lets tests differentiate by input position)."""
        return self._layers_and_head(jnp.swapaxes(x_BxTxE, 0, 1), carry, dropout_keys, first_projected=False)

    def _layers_and_head(self, x_TxBxD, carry: Carry, dropout_keys=None, first_projected: bool = True,
                         precision: lstm.Precision = lstm.FLOAT32):
        """Batch-major logits and the carry after the last step, from the first layer's projected inputs
        (``first_projected``) or its inputs."""
        keys = dropout_keys if dropout_keys is not None else [None] * self.config.layers
        new_carry = []
        for index, (layer, layer_carry, key) in enumerate(zip(self.layers, carry, keys)):
            if index == 0 and first_projected:
                x_TxBxD, layer_carry = layer(x_TxBxD, layer_carry, precision)
            else:
                x_TxBxD, layer_carry = layer.on_inputs(x_TxBxD, layer_carry, precision)
            x_TxBxD = _dropout(x_TxBxD, self.config.dropout, key)
            new_carry.append(layer_carry)
        return jnp.swapaxes(self.head(x_TxBxD), 0, 1), tuple(new_carry)

    def weights(self) -> lstm.Weights:
        """The parameters as a plain ``lstm.Weights`` pytree."""
        layers = tuple((layer.w_ih[...], layer.w_hh[...], layer.bias[...]) for layer in self.layers)
        return lstm.Weights(self.embed.embedding[...], layers, self.head.kernel[...], self.head.bias[...])

    def step(self, token_B, carry: Carry):
        """Logits for the next character after ``token_B``, one step at a time (for sampling)."""
        return lstm.step(self.weights(), token_B, carry)


def create_model(config: ModelConfig, seed: int = 0, *, initialize: bool = True) -> CharLSTM:
    """A new model; ``initialize=False`` gives all-zero parameters (a cheap skeleton to load weights into)."""
    return CharLSTM(config, rngs=nnx.Rngs(params=seed), zero_init=not initialize)
