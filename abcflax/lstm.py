"""The char-LSTM's math as pure functions of a ``Weights`` pytree, with no Flax in sight.

The NNX model (``model.CharLSTM``) runs these same functions on its own parameters; sampling and scoring
run them on weights read straight from a checkpoint, so continuing or harmonizing a tune never imports
``flax.nnx`` (which, with the ``flax.linen`` and treescope it pulls in, is a tenth of a second or more of
every command's startup).

Training runs time-major. Each layer projects all time steps' inputs in one matmul outside the recurrence
(the scan carries only ``h @ W_hh``), or, for a first layer whose embeddings have no dropout, reads rows of
the vocabulary projected once (``token_projection``); its four gates come from one fused matmul and take
one sigmoid. The recurrence has a hand-written backward pass (``lstm_scan``, and ``lstm_layer`` with the
projection): autodiff of the scan does two small matmuls per time step (for ``dh`` and for ``dW_hh``);
ours does only the ``dh`` one inside the reverse scan and gets ``dW_hh`` from one large matmul over all
time steps afterwards (1.2-1.35x faster per layer here). A wide recurrence (``state_in_columns``) holds its
state in columns, H x B, so that each step multiplies the matrix by a few columns, which streams it faster
on some CPUs (training times both layouts: ``layout.py``).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .config import ModelConfig
from .errors import CheckpointError

Carry = tuple  # per layer: (c_BxH, h_BxH)


class Weights(NamedTuple):
    """Every parameter of a char-LSTM, as plain arrays (a pytree: jit takes it as an argument)."""

    embedding: jax.Array  # V x E
    layers: tuple  # per layer (w_ih In x 4H, w_hh H x 4H, bias 4H); gates in PyTorch order i, f, g, o
    head_kernel: jax.Array  # H x V
    head_bias: jax.Array  # V


class Precision(NamedTuple):
    """Which of a training step's matmuls take bfloat16 operands (accumulating and returning float32); the
    carried state, the cell, the loss and the optimizer are float32 whatever it says. Hashable: a static
    argument of the layers' custom VJPs."""

    wide: bool = False  # the products over all time steps at once (``wide_product``; ``--bf16-matmuls``)
    recurrence: bool = False  # the recurrence's per-step products (``recurrent_product``; ``--bf16-recurrence``)
    # the devices a training batch is split over (data parallel): each runs the recurrence on its share of
    # the rows, which decides its layout (``state_in_columns``); set where the step is built for a mesh
    devices: int = 1
    # the recurrence's layout where it was chosen for the machine (``layout.recurrence_in_columns``): True
    # holds the state in columns, False in rows, None leaves it to ``state_in_columns``'s rule of thumb
    columns: bool | None = None


FLOAT32 = Precision()


def expected_shapes(config: ModelConfig) -> dict:
    """Parameter shapes of ``config`` in the checkpoint's (``nnx.to_pure_dict``) layout."""
    sizes = [config.embed_dim] + [config.hidden] * config.layers
    four = 4 * config.hidden
    return {"embed": {"embedding": (config.vocab_size, config.embed_dim)},
            "layers": {str(i): {"w_ih": (sizes[i], four), "w_hh": (config.hidden, four), "bias": (four,)}
                       for i in range(config.layers)},
            "head": {"kernel": (config.hidden, config.vocab_size), "bias": (config.vocab_size,)}}


def weights_from_params(params: dict, config: ModelConfig, source: str = "<params>") -> Weights:
    """``Weights`` from a checkpoint's parameter dict (layer keys may be ints or strings); a
    ``CheckpointError`` naming ``source`` when a parameter is missing or has another shape than ``config``."""
    expected = expected_shapes(config)
    try:
        layers_in = {str(k): v for k, v in params["layers"].items()}
        got = {"embed": {"embedding": params["embed"]["embedding"]},
               "layers": {k: {name: layers_in[k][name] for name in ("w_ih", "w_hh", "bias")}
                          for k in expected["layers"]},
               "head": {"kernel": params["head"]["kernel"], "bias": params["head"]["bias"]}}
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{source}: parameters do not fit the stored model config (missing {exc})") from None
    if len(layers_in) != config.layers:
        raise CheckpointError(f"{source}: {len(layers_in)} layers stored, the model config says {config.layers}")
    shapes = jax.tree_util.tree_map(lambda leaf: tuple(getattr(leaf, "shape", ())), got)
    if shapes != expected:
        raise CheckpointError(f"{source}: parameter shapes do not fit the stored model config")
    layers = tuple((got["layers"][str(i)]["w_ih"], got["layers"][str(i)]["w_hh"], got["layers"][str(i)]["bias"])
                   for i in range(config.layers))
    return Weights(got["embed"]["embedding"], layers, got["head"]["kernel"], got["head"]["bias"])


def weights_to_params(weights: Weights) -> dict:
    """The checkpoint's parameter dict of ``weights`` (the inverse of ``weights_from_params``)."""
    return {"embed": {"embedding": weights.embedding},
            "layers": {i: {"w_ih": w_ih, "w_hh": w_hh, "bias": bias}
                       for i, (w_ih, w_hh, bias) in enumerate(weights.layers)},
            "head": {"kernel": weights.head_kernel, "bias": weights.head_bias}}


def gate_scale(hidden: int, dtype=jnp.float32):
    """Per gate unit: 1 for the input, forget and output gates, 2 for the cell gate. With it all four gates
    take one sigmoid, as tanh(x) = 2 sigmoid(2x) - 1: one elementwise pass over the 4H gate row per step
    instead of one per gate (on a CPU each pass is a separate kernel, and a step's kernels are mostly
    launch overhead)."""
    ones = jnp.ones((hidden,), dtype)
    return jnp.concatenate([ones, ones, 2 * ones, ones])


def cell(gates_Bx4H, c_BxH, axis: int = -1):
    """LSTM cell from pre-activation gates (input, forget, cell, output): (c, h, gate activations B x 4H).
    ``axis``: the gate axis (0 for a state held in columns: gates 4H x B, c H x B)."""
    scale = gate_scale(c_BxH.shape[axis], gates_Bx4H.dtype)
    scale = scale[:, None] if axis == 0 else scale
    acts_Bx4H = jax.nn.sigmoid(gates_Bx4H * scale) * scale + (1 - scale)
    i, f, g, o = jnp.split(acts_Bx4H, 4, axis=axis)
    c_BxH = f * c_BxH + i * g
    return c_BxH, o * jnp.tanh(c_BxH), acts_Bx4H


def step(weights: Weights, token_B, carry: Carry):
    """Logits for the next character after ``token_B``, and the carry: one step of every layer."""
    x = jnp.take(weights.embedding, token_B, axis=0)
    new_carry = []
    for (w_ih, w_hh, bias), (c_BxH, h_BxH) in zip(weights.layers, carry):
        gates = recurrent_product(x, w_ih) + bias + recurrent_product(h_BxH, w_hh)
        c_BxH, h_BxH, _ = cell(gates, c_BxH)
        new_carry.append((c_BxH, h_BxH))
        x = h_BxH
    return recurrent_product(x, weights.head_kernel) + weights.head_bias, tuple(new_carry)


def stepping_weights(weights: Weights) -> Weights:
    """``weights`` for ``step`` one character at a time, its kernels in bfloat16 (its products then round their
    inputs to bfloat16 too, and accumulate and return float32; ``recurrent_product``). A step at a small batch
    reads every kernel once and does little arithmetic on it, so its time is the kernels' bytes: half of them
    made the default model's sampling step 1.24x as fast at 8 rows and 1.8x at 16 on an AVX512-BF16 CPU, and
    about as fast at 1 to 4 rows (benchmarks/RESULTS.md, session 19)."""
    half = lambda w: recurrent_weights(w, bf16=True)
    return weights._replace(layers=tuple((half(w_ih), half(w_hh), bias) for w_ih, w_hh, bias in weights.layers),
                            head_kernel=half(weights.head_kernel))


def token_projection(embedding_VxE, w_ih, bias, tokens_TxB):
    """The first layer's projected inputs, ``embedding[tokens] @ w_ih + bias``, computed as rows of the table
    ``embedding @ w_ih + bias``: each vocabulary entry is projected once (V rows) rather than each position
    (T x B rows), which for a wide embedding is most of the first layer's input work (the Keras seed shape:
    512 x 4H per position). Not with dropout on the embeddings, which masks each position differently."""
    return pick_rows(embedding_VxE @ w_ih + bias, tokens_TxB)


@jax.custom_vjp
def pick_rows(table_VxD, ids):
    """``table[ids]``, an id out of range reading the nearest row (a clipping gather: no fill-value select
    over the whole output); its gradient is a one-hot matmul (one dense product) rather than a scatter-add,
    and goes to the rows read."""
    return jnp.take(table_VxD, ids, axis=0, mode="clip")


def _pick_rows_fwd(table_VxD, ids):
    return pick_rows(table_VxD, ids), (jnp.clip(ids, 0, table_VxD.shape[0] - 1), table_VxD.shape[0])


def _pick_rows_bwd(residuals, d_rows):
    ids, rows = residuals  # clipped as the forward pass read them
    one_hot = jax.nn.one_hot(ids, rows, dtype=d_rows.dtype)
    # contract over the id axes as they are: flattening them would merge a batch axis split over devices
    # into the time axis, and the partitioner would gather the whole batch onto every device to do it
    axes = tuple(range(ids.ndim))
    return jax.lax.dot_general(one_hot, d_rows, ((axes, axes), ((), ()))), None


pick_rows.defvjp(_pick_rows_fwd, _pick_rows_bwd)


def wide_product(a, b, dimension_numbers, bf16: bool = False):
    """``lax.dot_general`` for the products over all time steps at once (input projections, their input
    gradients, weight gradients); with ``bf16`` on bfloat16 operands, accumulating and returning float32.
    On a CPU with AVX512-BF16 (AMD Zen 4, Intel Cooper Lake and later) XLA runs those at up to twice the
    float32 rate; held-out bits/char per training step measured the same as float32's (benchmarks/RESULTS.md,
    session 15). The recurrence's per-step products are a separate choice (``Precision.recurrence``)."""
    if bf16:
        a, b = a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)
        return jax.lax.dot_general(a, b, dimension_numbers, preferred_element_type=jnp.float32)
    return jax.lax.dot_general(a, b, dimension_numbers)


def project(x_TxBxI, w_ixG, bf16: bool = False):
    """``x @ w`` over the last axis of time-major inputs (a wide product)."""
    return wide_product(x_TxBxI, w_ixG, (((2,), (0,)), ((), ())), bf16)


def time_and_batch_product(x_TxBxI, d_TxBxG, bf16: bool = False):
    """``sum over t, b of x[t, b]^T d[t, b]``, a weight's gradient, contracting the axes in their stored order:
    ``jnp.einsum`` contracts them batch first, so XLA copied both operands into batch-major order, the
    4H-wide gate gradient included (12.6 MB per layer and device for the default shape), where this order
    transposes only the narrow ``x``. (Not a reshape to T*B rows: that merges the axis split over devices.)"""
    return wide_product(x_TxBxI, d_TxBxG, (((0, 1), (0, 1)), ((), ())), bf16)


def recurrent_weights(w_hh, bf16: bool = False):
    """``w_hh`` as the recurrence reads it at every time step: with ``bf16``, rounded to bfloat16 once, before
    the scan. The per-step product of a few rows by this matrix is bound by reading it (16 MB of float32 for
    H = 1024, each step, forward and backward), so half the bytes made the MIT lab shape's step 1.31x faster
    on a CPU with AVX512-BF16. The cost is bits/char: the default's short recipe ended 0.009-0.014 higher at
    1,600 steps with three data seeds (benchmarks/RESULTS.md, session 16), so it is a choice of its own."""
    return w_hh.astype(jnp.bfloat16) if bf16 else w_hh


def recurrent_product(x_BxK, w_KxN):
    """``x @ w`` inside the recurrence; for bfloat16 weights (``recurrent_weights``) ``x`` is rounded too and
    the product accumulates and returns float32 (``wide_product``'s rounding), so the carried state, the cell
    and its gradients stay float32."""
    return wide_product(x_BxK, w_KxN, (((1,), (0,)), ((), ())), w_KxN.dtype == jnp.bfloat16)


def state_in_columns(w_rec, rows: int) -> bool:
    """Whether the recurrence over ``w_rec`` holds its state in columns, ``rows`` of them on each device: h
    and c as H x B, the gates as 4H x B, each step's products ``w_rec^T @ h`` forward and ``w_hh @ dgates``
    backward. A step reads the whole matrix for a few rows of work, and a matrix times a few columns streams
    it row after row: 100 steps of the MIT lab shape (H = 1024, 8 rows) took 43 against 68 ms forward and
    41 against 75 ms backward. The whole training step, both layouts alternated in one process
    (benchmarks/RESULTS.md, session 22): in float32 1.38x at H = 1024 (8 rows a device), 1.06x at H = 384
    (16 rows), 1.00x at H = 384 (8 rows), but 0.96x and 0.92x at H = 256 (8 and 16 rows), so from
    ``COLUMN_STATE_MIN_HIDDEN`` on. With a bfloat16 recurrence the rows decide: 1.13-1.27x at 8 rows a
    device (H = 256, 384, 1024), 0.90-0.95x at 16 (H = 256, 384). Those were Intel AMX machines; on session
    26's AMD EPYC rows won at H = 384 in float32 and with a bfloat16 recurrence at 8 rows, so a training run
    times both layouts instead (``layout.recurrence_in_columns``) and this rule is left to the rest
    (evaluation, priming, small or multi-host runs)."""
    if w_rec.dtype == jnp.bfloat16:
        return rows <= COLUMN_STATE_MAX_BF16_ROWS
    return w_rec.shape[0] >= COLUMN_STATE_MIN_HIDDEN


COLUMN_STATE_MIN_HIDDEN = 384  # from this hidden size on, a float32 recurrence holds its state in columns
COLUMN_STATE_MAX_BF16_ROWS = 8  # up to this many rows a device, a bfloat16 recurrence holds it in columns


def column_product(w_MxK, state_KxB):
    """``w @ state`` for a state held in columns; for bfloat16 weights the state is rounded too and the
    product accumulates and returns float32 (as ``recurrent_product``)."""
    return wide_product(w_MxK, state_KxB, (((1,), (0,)), ((), ())), w_MxK.dtype == jnp.bfloat16)


def _flip(columns: bool):
    """Between the usual rows (B x D) and the recurrence's layout: a transpose when the state is held in
    columns (its own inverse), else nothing. Applied to each step's slices inside the scan: transposing
    the stacked T x B x 4H inputs and gate gradients around the scans instead made the default's training
    step 6% slower (benchmarks/RESULTS.md, session 22)."""
    return (lambda a: jnp.swapaxes(a, -1, -2)) if columns else (lambda a: a)


def _columns(w_rec, batch: int, precision: Precision) -> bool:
    if precision.columns is not None:
        return precision.columns
    return state_in_columns(w_rec, max(1, batch // max(1, precision.devices)))


def _forward_steps(xproj_TxBx4H, w_hh, c0_BxH, h0_BxH, precision: Precision, keep_residuals: bool, bias=None):
    """The forward recurrence: ((h at every step T x B x H, last c, last h), residuals). With
    ``keep_residuals`` the residuals are every step's c and gate activations, in the recurrence's layout
    (``state_in_columns``), for the backward pass; else None. ``bias`` (4H), if given, is added to the
    projected inputs inside each step, where the step adds its product anyway: added to all of them before
    the scan it was a pass of its own over the T x B x 4H array (4 ms a step and device for the default)."""
    w_rec = recurrent_weights(w_hh, precision.recurrence)
    columns = _columns(w_rec, c0_BxH.shape[0], precision)
    flip, axis = _flip(columns), 0 if columns else -1
    if columns:
        w_t = w_rec.T  # 4H x H, transposed once before the scan
        times_w = lambda h_HxB: column_product(w_t, h_HxB)
    else:
        times_w = lambda h_BxH: recurrent_product(h_BxH, w_rec)
    if bias is not None:
        bias = bias[:, None] if columns else bias
        times_w_plus_bias, times_w = times_w, lambda h: times_w_plus_bias(h) + bias

    def scan_step(carry, xproj_Bx4H):
        c, h = carry
        c, h, acts = cell(flip(xproj_Bx4H) + times_w(h), c, axis)
        return (c, h), ((flip(h), c, acts) if keep_residuals else flip(h))

    (c, h), per_step = jax.lax.scan(scan_step, (flip(c0_BxH), flip(h0_BxH)), xproj_TxBx4H)
    h_TxBxH, residuals = (per_step[0], per_step[1:]) if keep_residuals else (per_step, None)
    return (h_TxBxH, flip(c), flip(h)), residuals


def _scan_forward(xproj_TxBx4H, w_hh, c0_BxH, h0_BxH, precision: Precision = FLOAT32, bias=None):
    """The recurrence, also keeping every step's c and gate activations for the backward pass."""
    return _forward_steps(xproj_TxBx4H, w_hh, c0_BxH, h0_BxH, precision, keep_residuals=True, bias=bias)


@partial(jax.custom_vjp, nondiff_argnums=(4,))
def lstm_scan(xproj_TxBx4H, w_hh, c0_BxH, h0_BxH, precision: Precision = FLOAT32):
    """The recurrence over projected inputs: (h at every step, last c, last h). Without a gradient (evaluation,
    priming) it keeps only h. ``precision.recurrence``: every step's product, in both directions, reads
    ``w_hh`` rounded to bfloat16 (``recurrent_weights``); ``precision.wide``: the backward pass takes
    ``w_hh``'s gradient as a bfloat16 product (``wide_product``)."""
    return _forward_steps(xproj_TxBx4H, w_hh, c0_BxH, h0_BxH, precision, keep_residuals=False)[0]


def _lstm_scan_fwd(xproj_TxBx4H, w_hh, c0_BxH, h0_BxH, precision: Precision = FLOAT32, bias=None):
    outputs, (c_steps, acts_steps) = _scan_forward(xproj_TxBx4H, w_hh, c0_BxH, h0_BxH, precision, bias)
    return outputs, (w_hh, c0_BxH, h0_BxH, outputs[0], c_steps, acts_steps)


def cell_backward(dh_BxH, dc_BxH, c_BxH, c_before_BxH, acts_Bx4H, offset_4H, axis: int = -1):
    """One step of the cell's backward pass, from the gradients reaching its h and c: (the gradient of its
    gate pre-activations, the gradient of the c it started from). ``offset_4H`` is ``gate_scale - 1``: the
    activations' slopes in one expression over all four gates, a(1 - a) for a sigmoid gate and
    1 - a^2 = (1 - a)(1 + a) for the cell gate's tanh, i.e. (1 - a)(a + scale - 1). ``axis``: the gate axis
    (0 for a state held in columns, with ``offset`` a 4H x 1 column, where each block's slope is written out)."""
    i, f, g, o = jnp.split(acts_Bx4H, 4, axis=axis)
    tanh_c = jnp.tanh(c_BxH)
    dc_BxH = dc_BxH + dh_BxH * o * (1 - tanh_c * tanh_c)
    if axis == 0:
        # In columns each gate's block is computed on its own and only the results are joined: joining the
        # inputs (below) along the major axis made XLA fuse the joins into the arithmetic, recomputing dc
        # for three of the blocks and picking an input per element, at 67 us a call against 47 us for this
        # (the default's training step 1.02-1.05x, benchmarks/RESULTS.md, session 23).
        return jnp.concatenate([dc_BxH * g * i * (1 - i), dc_BxH * c_before_BxH * f * (1 - f),
                                dc_BxH * i * (1 - g * g), dh_BxH * tanh_c * o * (1 - o)], axis=0), dc_BxH * f
    # d(gate pre-activation) = upstream x the factor the gate multiplies x the slope
    upstream = jnp.concatenate([dc_BxH, dc_BxH, dc_BxH, dh_BxH], axis=axis)
    partner = jnp.concatenate([g, c_before_BxH, i, tanh_c], axis=axis)
    return upstream * partner * (1 - acts_Bx4H) * (acts_Bx4H + offset_4H), dc_BxH * f


def backward_product(w_hh, bf16: bool):
    """``dgates -> dgates @ w_hh^T``, the backward scan's per-step product for a state held in rows. In
    float32 ``w_hh`` is transposed once, before the scan: contracting its gate axis in place re-read it slowly
    every step (100 steps of the MIT lab shape: 88 against 118 ms). In bfloat16 the other way round: XLA's
    YNNPACK kernel contracts the stored matrix's rows faster (44 against 68 ms), and no transposed copy is
    made; the MIT lab shape's training step with ``--bf16-recurrence`` ran 1.18x as fast
    (benchmarks/RESULTS.md, session 20)."""
    if not bf16:
        w_t = w_hh.T
        return lambda dgates: recurrent_product(dgates, w_t)
    w_rec = recurrent_weights(w_hh, True)
    return lambda dgates: jax.lax.dot_general(dgates.astype(jnp.bfloat16), w_rec, (((1,), (1,)), ((), ())),
                                              preferred_element_type=jnp.float32)


def _lstm_scan_bwd(precision: Precision, residuals, cotangents):
    w_hh, c0, h0, h_TxBxH, c_steps, acts_steps = residuals
    dh_TxBxH, dc_last, dh_last = cotangents
    columns = _columns(recurrent_weights(w_hh, precision.recurrence), c0.shape[0], precision)
    flip, axis = _flip(columns), 0 if columns else -1
    c_prev = jnp.concatenate([flip(c0)[None], c_steps[:-1]], axis=0)
    h_prev = jnp.concatenate([h0[None], h_TxBxH[:-1]], axis=0)
    if columns:
        w_rec = recurrent_weights(w_hh, precision.recurrence)
        times_w_t = lambda dgates_4HxB: column_product(w_rec, dgates_4HxB)
    else:
        times_w_t = backward_product(w_hh, precision.recurrence)
    offset = gate_scale(w_hh.shape[0], acts_steps.dtype) - 1
    offset = offset[:, None] if columns else offset

    def scan_step(carry, inputs):
        dh_next, dc_next = carry
        dh_out_BxH, c, c_before, acts = inputs
        dgates, dc_before = cell_backward(flip(dh_out_BxH) + dh_next, dc_next, c, c_before, acts, offset, axis)
        return (times_w_t(dgates), dc_before), flip(dgates)

    (dh0, dc0), dgates_TxBx4H = jax.lax.scan(scan_step, (flip(dh_last), flip(dc_last)),
                                             (dh_TxBxH, c_steps, c_prev, acts_steps), reverse=True)
    # one large matmul instead of T small ones
    dw_hh = time_and_batch_product(h_prev, dgates_TxBx4H, precision.wide)
    return dgates_TxBx4H, dw_hh, flip(dc0), flip(dh0)


lstm_scan.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(6,))
def lstm_layer(x_TxBxI, w_ih, bias, w_hh, c0_BxH, h0_BxH, precision: Precision = FLOAT32):
    """A whole layer on its time-major inputs: their projection (one matmul over all steps) and the
    recurrence, as ``lstm_scan(x @ w_ih + bias, ...)``. Its backward pass takes the input weights' gradient
    as ``x^T dgates``, the same orientation as ``w_hh``'s: autodiff of the projection takes it transposed,
    which made XLA copy the 4H-wide gate gradient into the other layout (12.6 MB per layer for the default
    shape) where now it transposes the narrow inputs. ``precision.wide``: the projection and the input
    weights' and inputs' gradients are bfloat16 products too (``wide_product``)."""
    return _forward_steps(project(x_TxBxI, w_ih, precision.wide), w_hh, c0_BxH, h0_BxH, precision,
                          keep_residuals=False, bias=bias)[0]


def _lstm_layer_fwd(x_TxBxI, w_ih, bias, w_hh, c0_BxH, h0_BxH, precision: Precision = FLOAT32):
    xproj_TxBx4H = project(x_TxBxI, w_ih, precision.wide)  # the bias is added inside the recurrence
    outputs, scan_residuals = _lstm_scan_fwd(xproj_TxBx4H, w_hh, c0_BxH, h0_BxH, precision, bias)
    return outputs, (x_TxBxI, w_ih, scan_residuals)


def _lstm_layer_bwd(precision: Precision, residuals, cotangents):
    x_TxBxI, w_ih, scan_residuals = residuals
    dxproj_TxBx4H, dw_hh, dc0, dh0 = _lstm_scan_bwd(precision, scan_residuals, cotangents)
    dw_ih = time_and_batch_product(x_TxBxI, dxproj_TxBx4H, precision.wide)
    dx_TxBxI = wide_product(dxproj_TxBx4H, w_ih, (((2,), (1,)), ((), ())), precision.wide)
    return dx_TxBxI, dw_ih, dxproj_TxBx4H.sum(axis=(0, 1)), dw_hh, dc0, dh0


lstm_layer.defvjp(_lstm_layer_fwd, _lstm_layer_bwd)
