"""The char-LSTM: shapes, jit == no jit, causality, one train step changes every parameter."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import abcflax
from abcflax.config import ModelConfig, TrainConfig
from abcflax.lstm import FLOAT32, Precision
from abcflax.training import make_optimizer, make_train_step

CONFIG = ModelConfig(vocab_size=23, embed_dim=8, hidden=12, layers=2, dropout=0.0)


def tokens(batch=3, length=9, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, CONFIG.vocab_size, (batch, length)), jnp.int32)


def test_shapes():
    model = abcflax.create_model(CONFIG)
    logits, carry = model(tokens())
    assert logits.shape == (3, 9, CONFIG.vocab_size)
    assert len(carry) == CONFIG.layers and carry[0][0].shape == (3, CONFIG.hidden)
    step_logits, step_carry = model.step(tokens()[:, 0], model.init_carry(3))
    assert step_logits.shape == (3, CONFIG.vocab_size)
    assert jax.tree_util.tree_structure(step_carry) == jax.tree_util.tree_structure(carry)


def test_step_by_step_equals_whole_sequence():
    model = abcflax.create_model(CONFIG)
    x = tokens()
    whole, _ = model(x)
    carry = model.init_carry(3)
    for t in range(x.shape[1]):
        logits, carry = model.step(x[:, t], carry)
        np.testing.assert_allclose(logits, whole[:, t], rtol=1e-5, atol=1e-5)


def test_jit_equals_no_jit():
    model = abcflax.create_model(CONFIG)
    graphdef, params = nnx.split(model)

    def forward(params, x):
        return nnx.merge(graphdef, params)(x)[0]

    np.testing.assert_allclose(jax.jit(forward)(params, tokens()), forward(params, tokens()), rtol=1e-5, atol=1e-5)


def test_causality():
    """The output at position t has zero gradient with respect to inputs after t."""
    model = abcflax.create_model(CONFIG)
    x_emb = model.embed(tokens(batch=1, length=7))
    t = 3

    def output_at_t(x):
        logits, _ = model.forward_embedded(x, model.init_carry(1))
        return jnp.sum(logits[:, t] ** 2)

    grad = jax.grad(output_at_t)(x_emb)
    per_position = jnp.abs(grad).sum(axis=(0, 2))
    assert jnp.all(per_position[t + 1:] == 0.0)
    assert jnp.all(per_position[: t + 1] > 0.0)


def test_one_train_step_changes_every_parameter():
    model = abcflax.create_model(ModelConfig(vocab_size=23, embed_dim=8, hidden=12, layers=2, dropout=0.2))
    graphdef, params = nnx.split(model)
    tx = make_optimizer(TrainConfig(warmup_steps=1, learning_rate=1e-2))
    step = jax.jit(make_train_step(graphdef, tx))
    x = tokens(batch=4, length=10)
    new_params, _, loss = step(params, tx.init(params), x, jnp.roll(x, -1, axis=1), jax.random.key(0))
    assert np.isfinite(float(loss))
    before = jax.tree_util.tree_leaves_with_path(params)
    after = jax.tree_util.tree_leaves(new_params)
    unchanged = [jax.tree_util.keystr(path) for (path, old), new in zip(before, after)
                 if np.array_equal(np.asarray(old), np.asarray(new))]
    assert not unchanged, f"parameters not updated: {unchanged}"


def test_dropout_only_in_training():
    model = abcflax.create_model(ModelConfig(vocab_size=23, embed_dim=8, hidden=12, layers=1, dropout=0.5))
    x = tokens()
    a, _ = model(x)
    b, _ = model(x)
    c, _ = model(x, dropout_key=jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert optax is not None


def output_loss(layer, weights_TxBxH):
    """A loss that reaches every output of an LSTM function: all hidden states, the last c and the last h."""
    def loss(*args):
        h_all, c_last, h_last = layer(*args)
        return jnp.sum(h_all * weights_TxBxH) + jnp.sum(jnp.sin(c_last)) + jnp.sum(h_last**2)
    return loss


def test_hand_written_lstm_backward_matches_autodiff():
    """``lstm_scan``'s custom backward pass gives autodiff's gradients for inputs, weights and both carries."""
    from abcflax.lstm import _scan_forward, lstm_scan

    keys = jax.random.split(jax.random.key(3), 6)
    steps, batch, hidden = 7, 3, 5
    xproj = jax.random.normal(keys[0], (steps, batch, 4 * hidden))
    w_hh = jax.random.normal(keys[1], (hidden, 4 * hidden)) / hidden**0.5
    c0, h0 = jax.random.normal(keys[2], (batch, hidden)), jax.random.normal(keys[3], (batch, hidden))
    weights = jax.random.normal(keys[4], (steps, batch, hidden))

    reference = jax.grad(output_loss(lambda *a: _scan_forward(*a)[0], weights), argnums=(0, 1, 2, 3))(
        xproj, w_hh, c0, h0)
    custom = jax.grad(output_loss(lstm_scan, weights), argnums=(0, 1, 2, 3))(xproj, w_hh, c0, h0)
    for ours, theirs in zip(custom, reference):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-4, atol=1e-5)


def test_checkpoint_params_become_weights_and_back():
    from abcflax import lstm

    model = abcflax.create_model(CONFIG, seed=3)
    params = nnx.to_pure_dict(nnx.state(model))
    weights = lstm.weights_from_params(params, CONFIG)
    np.testing.assert_array_equal(weights.layers[1][1], model.layers[1].w_hh[...])
    back = lstm.weights_to_params(weights)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: bool(np.array_equal(a, b)), back, params))
    x = tokens()
    logits, carry = lstm.step(weights, x[:, 0], model.init_carry(3))
    np.testing.assert_allclose(logits, model(x[:, :1])[0][:, 0], rtol=1e-5, atol=1e-5)


def test_weights_that_do_not_fit_the_config_are_a_checkpoint_error():
    import pytest

    from abcflax import lstm

    params = nnx.to_pure_dict(nnx.state(abcflax.create_model(CONFIG)))
    wider = ModelConfig(vocab_size=23, embed_dim=8, hidden=16, layers=2, dropout=0.0)
    deeper = ModelConfig(vocab_size=23, embed_dim=8, hidden=12, layers=3, dropout=0.0)
    for config in (wider, deeper):
        with pytest.raises(abcflax.CheckpointError, match="model config"):
            lstm.weights_from_params(params, config, "m.msgpack")
    del params["head"]["bias"]
    with pytest.raises(abcflax.CheckpointError, match="m.msgpack: .*missing"):
        lstm.weights_from_params(params, CONFIG, "m.msgpack")


def test_a_loaded_model_builds_its_nnx_module_only_when_asked(tmp_path):
    import subprocess
    import sys

    from abcflax.loading import Model

    model = abcflax.create_model(CONFIG, seed=1)
    loaded = Model.from_module(model, abcflax.Vocab.from_texts(["abc"]), "<test>")
    x = tokens()
    np.testing.assert_allclose(loaded.module(x)[0], model(x)[0], rtol=1e-6)
    # continuing a tune runs on the plain weights: flax.nnx (and treescope) are never imported
    code = ("import sys, abcflax; abcflax.complete('X:1\\nM:4/4\\nL:1/8\\nK:G\\nGABc dedB|', bars=1); "
            "print(sorted(m for m in ('flax.nnx', 'treescope') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_token_projection_equals_embedding_then_matmul_values_and_gradients():
    """The first layer's inputs from the projected-vocabulary table equal the embedding lookup followed by the
    matmul, and so do the gradients for the embedding, the input weights and the bias (the table's backward
    pass is a one-hot matmul of its own)."""
    from abcflax import lstm

    rng = np.random.default_rng(3)
    embedding, w_ih, bias = (jnp.asarray(rng.normal(size=shape), jnp.float32) for shape in ((11, 5), (5, 8), (8,)))
    ids_TxB = jnp.asarray(rng.integers(0, 11, (6, 4)), jnp.int32)
    weights_TxBx8 = jnp.asarray(rng.normal(size=(6, 4, 8)), jnp.float32)

    def via_table(e, w, b):
        return jnp.sum(lstm.token_projection(e, w, b, ids_TxB) * weights_TxBx8)

    def via_lookup(e, w, b):
        return jnp.sum((jnp.take(e, ids_TxB, axis=0) @ w + b) * weights_TxBx8)

    np.testing.assert_allclose(via_table(embedding, w_ih, bias), via_lookup(embedding, w_ih, bias), rtol=1e-5)
    for got, want in zip(jax.grad(via_table, argnums=(0, 1, 2))(embedding, w_ih, bias),
                         jax.grad(via_lookup, argnums=(0, 1, 2))(embedding, w_ih, bias)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_whole_sequence_equals_the_embedded_path():
    """``model(tokens)`` (table path) and ``forward_embedded(embed(tokens))`` give the same logits."""
    model = abcflax.create_model(CONFIG)
    x = tokens()
    by_table, _ = model(x)
    by_embedding, _ = model.forward_embedded(model.embed(x), model.init_carry(3))
    np.testing.assert_allclose(by_table, by_embedding, rtol=1e-5, atol=1e-5)


def test_cell_equals_the_textbook_lstm_cell():
    """One sigmoid over all four gates (tanh(x) = 2 sigmoid(2x) - 1) gives the usual sigmoid/tanh cell."""
    from abcflax.lstm import cell

    rng = np.random.default_rng(4)
    gates, c = jnp.asarray(rng.normal(size=(3, 20)) * 3, jnp.float32), jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
    new_c, new_h, acts = cell(gates, c)
    np.testing.assert_allclose(acts, jnp.concatenate([i, f, g, o], axis=-1), atol=1e-6)
    np.testing.assert_allclose(new_c, f * c + i * g, atol=1e-6)
    np.testing.assert_allclose(new_h, o * jnp.tanh(f * c + i * g), atol=1e-6)


def test_dropout_drops_its_rate_and_keeps_the_mean():
    from abcflax.model import _dropout

    for rate, width in ((0.25, 384), (0.5, 7), (0.1, 64)):
        out = np.asarray(_dropout(jnp.ones((40, 30, width)), rate, jax.random.key(7)))
        dropped = np.mean(out == 0)
        assert abs(dropped - rate) < 0.01, (rate, dropped)
        kept = out[out != 0]
        np.testing.assert_allclose(kept, kept[0])  # every kept unit scaled alike
        assert abs(out.mean() - 1.0) < 0.02
    different = _dropout(jnp.ones((8, 5, 16)), 0.25, jax.random.key(1)) != _dropout(jnp.ones((8, 5, 16)), 0.25,
                                                                                        jax.random.key(2))
    assert bool(jnp.any(different))


def test_hand_written_layer_backward_matches_autodiff():
    """``lstm_layer`` (projection + recurrence, own backward pass) gives autodiff's gradients for the inputs,
    both weight matrices, the bias and both carries."""
    from abcflax.lstm import _scan_forward, lstm_layer

    keys = jax.random.split(jax.random.key(5), 8)
    steps, batch, in_dim, hidden = 6, 3, 4, 5
    x = jax.random.normal(keys[0], (steps, batch, in_dim))
    w_ih = jax.random.normal(keys[1], (in_dim, 4 * hidden)) / in_dim**0.5
    bias = jax.random.normal(keys[2], (4 * hidden,))
    w_hh = jax.random.normal(keys[3], (hidden, 4 * hidden)) / hidden**0.5
    c0, h0 = jax.random.normal(keys[4], (batch, hidden)), jax.random.normal(keys[5], (batch, hidden))
    weights = jax.random.normal(keys[6], (steps, batch, hidden))

    def autodiff_layer(x, w_ih, bias, w_hh, c0, h0):
        return _scan_forward(x @ w_ih + bias, w_hh, c0, h0)[0]

    arguments = (x, w_ih, bias, w_hh, c0, h0)
    reference = jax.grad(output_loss(autodiff_layer, weights), argnums=tuple(range(6)))(*arguments)
    custom = jax.grad(output_loss(lstm_layer, weights), argnums=tuple(range(6)))(*arguments)
    for ours, theirs in zip(custom, reference):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lstm_layer(*arguments)[0], autodiff_layer(*arguments)[0], rtol=1e-5, atol=1e-6)


def test_table_path_and_embedded_path_give_the_same_parameter_gradients():
    """A training loss through ``model(tokens)`` (the projected table) and through
    ``forward_embedded(embed(tokens))`` (per-position projection) has the same gradient for every parameter."""
    model = abcflax.create_model(CONFIG)
    graphdef, params = nnx.split(model)
    x, y = tokens(seed=1), tokens(seed=2)

    def loss(params, through_table):
        m = nnx.merge(graphdef, params)
        logits = m(x)[0] if through_table else m.forward_embedded(m.embed(x), m.init_carry(3))[0]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    by_table, by_embedding = jax.grad(loss)(params, True), jax.grad(loss)(params, False)
    for a, b in zip(jax.tree_util.tree_leaves(by_table), jax.tree_util.tree_leaves(by_embedding)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_dropout_near_one_drops_everything_and_a_tiny_rate_nothing():
    from abcflax.model import _dropout

    ones = jnp.ones((4, 3, 10))
    assert not np.any(np.asarray(_dropout(ones, 0.999, jax.random.key(0))))
    np.testing.assert_array_equal(_dropout(ones, 0.001, jax.random.key(0)), ones)


def test_pick_rows_reads_and_credits_the_same_rows_for_ids_out_of_range():
    from abcflax.lstm import pick_rows

    table = jnp.arange(15.0).reshape(5, 3)
    ids = jnp.asarray([[0, 7], [-1, 4]], jnp.int32)
    np.testing.assert_array_equal(pick_rows(table, ids), table[jnp.clip(ids, 0, 4)])
    grad = jax.grad(lambda t: jnp.sum(pick_rows(t, ids)))(table)
    np.testing.assert_array_equal(grad[:, 0], [2.0, 0.0, 0.0, 0.0, 2.0])  # rows 0 and 4, each read twice


def test_the_bundled_grammar_tables_match_the_grammar_and_vocabulary():
    """A change to abcflax/grammar.py needs the bundled tables rebuilt, or every user's first run rebuilds them."""
    from abcflax import grammar
    from abcflax.loading import default_model_path

    if not default_model_path().exists():
        pytest.skip("no bundled model in this checkout")
    chars = abcflax.load_model(None).vocab.chars
    bundled = default_model_path().parent / f"grammar-{grammar.table_key(chars)}.npz"
    assert bundled.is_file(), f"rebuild {bundled.name} (see data/model/MODEL_CARD.md)"
    assert len(list(bundled.parent.glob("grammar-*.npz"))) == 1  # no stale tables shipped beside it


def test_bf16_products_give_gradients_close_to_float32():
    """``lstm_layer`` with bfloat16 products, over all steps, in the recurrence, or both: bfloat16 operands
    (8 bits of mantissa) with float32 accumulation, so each gradient is within a few tenths of a percent of
    the float32 one, not equal to it; the forward pass's values are as close."""
    from abcflax.lstm import lstm_layer

    keys = jax.random.split(jax.random.key(7), 6)
    steps, batch, in_dim, hidden = 6, 3, 16, 8
    arguments = (jax.random.normal(keys[0], (steps, batch, in_dim)),
                 jax.random.normal(keys[1], (in_dim, 4 * hidden)) / in_dim**0.5,
                 jax.random.normal(keys[2], (4 * hidden,)),
                 jax.random.normal(keys[3], (hidden, 4 * hidden)) / hidden**0.5,
                 jnp.zeros((batch, hidden)), jnp.zeros((batch, hidden)))
    weights = jax.random.normal(keys[4], (steps, batch, hidden))

    def gradients(precision):
        loss = output_loss(lambda *args: lstm_layer(*args, precision), weights)
        return jax.grad(loss, argnums=(0, 1, 2, 3))(*arguments)

    for precision in (Precision(wide=True), Precision(recurrence=True), Precision(wide=True, recurrence=True)):
        for low, full in zip(gradients(precision), gradients(FLOAT32)):
            assert low.dtype == jnp.float32
            scale = float(jnp.abs(full).max())
            assert 0 < float(jnp.abs(low - full).max()) <= 0.02 * scale  # rounded, yet close
        np.testing.assert_allclose(lstm_layer(*arguments, precision)[0], lstm_layer(*arguments)[0], atol=0.02)


def scan_dot_operand_dtypes(jaxpr) -> list:
    """The operand dtypes of each ``dot_general`` inside a ``scan`` of ``jaxpr``, at any depth."""
    from jax.extend.core import jaxprs_in_params

    found = []

    def visit(inner, in_scan):
        for eqn in inner.eqns:
            if eqn.primitive.name == "dot_general" and in_scan:
                found.append(tuple(str(var.aval.dtype) for var in eqn.invars))
            for sub in jaxprs_in_params(eqn.params):
                visit(sub, in_scan or eqn.primitive.name == "scan")

    visit(jaxpr.jaxpr, False)
    return found


def test_bf16_recurrence_reads_bf16_weights_in_both_directions():
    """With ``precision.recurrence`` the per-step product of the recurrence, in the forward scan and in the
    reverse one, multiplies bfloat16 operands (half the bytes of the matrix it reads every step); without it,
    float32 ones, bfloat16 products over all time steps or not."""
    from abcflax.lstm import lstm_layer

    steps, batch, in_dim, hidden = 5, 2, 6, 4
    arguments = (jnp.ones((steps, batch, in_dim)), jnp.ones((in_dim, 4 * hidden)), jnp.zeros((4 * hidden,)),
                 jnp.ones((hidden, 4 * hidden)) / 8, jnp.zeros((batch, hidden)), jnp.zeros((batch, hidden)))

    def dtypes(precision):
        loss = lambda *args: lstm_layer(*args, precision)[0].sum()
        return scan_dot_operand_dtypes(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1, 3)))(*arguments))

    assert dtypes(Precision(recurrence=True)) == [("bfloat16", "bfloat16")] * 2  # forward, then backward
    assert dtypes(Precision(wide=True, recurrence=True)) == [("bfloat16", "bfloat16")] * 2
    assert dtypes(Precision(wide=True)) == [("float32", "float32")] * 2
    assert dtypes(FLOAT32) == [("float32", "float32")] * 2


def scan_dot_left_operand_shapes(jaxpr) -> list:
    """The shape of each ``dot_general``'s left operand inside a ``scan`` of ``jaxpr``, at any depth."""
    from jax.extend.core import jaxprs_in_params

    found = []

    def visit(inner, in_scan):
        for eqn in inner.eqns:
            if eqn.primitive.name == "dot_general" and in_scan:
                found.append(tuple(eqn.invars[0].aval.shape))
            for sub in jaxprs_in_params(eqn.params):
                visit(sub, in_scan or eqn.primitive.name == "scan")

    visit(jaxpr.jaxpr, False)
    return found


def test_a_recurrence_in_columns_computes_what_one_in_rows_does(monkeypatch):
    """A float32 recurrence from ``COLUMN_STATE_MIN_HIDDEN`` on, and a bfloat16 one on at most
    ``COLUMN_STATE_MAX_BF16_ROWS`` rows a device, holds h, c and the gates as columns (each step's products
    ``w_hh^T @ h`` and ``w_hh @ dgates``); outputs, last carries and every gradient are those of the rows
    layout, with and without a gradient."""
    from abcflax import lstm

    keys = jax.random.split(jax.random.key(9), 8)
    steps, batch, in_dim, hidden = 6, 4, 4, 5
    arguments = (jax.random.normal(keys[0], (steps, batch, in_dim)),
                 jax.random.normal(keys[1], (in_dim, 4 * hidden)) / 2, jax.random.normal(keys[2], (4 * hidden,)),
                 jax.random.normal(keys[3], (hidden, 4 * hidden)) / hidden**0.5,
                 jax.random.normal(keys[4], (batch, hidden)), jax.random.normal(keys[5], (batch, hidden)))
    weights = jax.random.normal(keys[6], (steps, batch, hidden))

    def run(precision):
        layer = lambda *args: lstm.lstm_layer(*args, precision)
        grads = jax.grad(output_loss(layer, weights), argnums=tuple(range(6)))(*arguments)
        no_grad = lstm.lstm_scan(arguments[0] @ arguments[1] + arguments[2], *arguments[3:], precision)
        shapes = scan_dot_left_operand_shapes(jax.make_jaxpr(jax.grad(output_loss(layer, weights)))(*arguments))
        return layer(*arguments), no_grad, grads, shapes

    in_rows = [(batch, hidden), (batch, 4 * hidden)]  # forward h @ w_hh, backward dgates @ w_hh^T
    in_columns = [(4 * hidden, hidden), (hidden, 4 * hidden)]  # w_hh^T @ h_HxB, w_hh @ dgates_4HxB
    monkeypatch.setattr(lstm, "COLUMN_STATE_MIN_HIDDEN", hidden + 1)
    rows = run(FLOAT32)
    monkeypatch.setattr(lstm, "COLUMN_STATE_MIN_HIDDEN", hidden)
    columns = run(FLOAT32)
    assert rows[3] == in_rows and columns[3] == in_columns
    for ours, theirs in zip(jax.tree.leaves(columns[:3]), jax.tree.leaves(rows[:3])):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(lstm, "COLUMN_STATE_MAX_BF16_ROWS", batch // 2)
    bf16_rows, bf16_columns = run(Precision(recurrence=True)), run(Precision(recurrence=True, devices=2))
    assert bf16_rows[3] == in_rows and bf16_columns[3] == in_columns  # batch / 2 rows on each of 2 devices
    for ours, theirs in zip(jax.tree.leaves(bf16_columns[:3]), jax.tree.leaves(bf16_rows[:3])):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=2e-2, atol=2e-2)
    monkeypatch.undo()
    # a layout chosen for the machine (layout.py) overrides the rule either way
    monkeypatch.setattr(lstm, "COLUMN_STATE_MIN_HIDDEN", hidden)
    assert run(Precision(columns=False))[3] == in_rows
    monkeypatch.setattr(lstm, "COLUMN_STATE_MIN_HIDDEN", hidden + 1)
    assert run(Precision(columns=True))[3] == in_columns
    monkeypatch.undo()
    for shape, dtype, rows_a_device, expected in [((1024, 4096), jnp.float32, 64, True),
                                                  ((384, 1536), jnp.float32, 16, True),
                                                  ((256, 1024), jnp.float32, 8, False),
                                                  ((256, 1024), jnp.bfloat16, 8, True),
                                                  ((1024, 4096), jnp.bfloat16, 16, False)]:
        assert lstm.state_in_columns(jnp.zeros(shape, dtype), rows_a_device) == expected


def test_a_training_step_tells_the_layers_how_many_devices_share_its_batch(monkeypatch):
    from abcflax import lstm, training

    seen = []
    real = lstm._columns
    monkeypatch.setattr(lstm, "_columns", lambda w, batch, precision: seen.append(precision.devices) or real(
        w, batch, precision))
    model = abcflax.create_model(CONFIG)
    graphdef, params = nnx.split(model, nnx.Param)
    tx = training.make_optimizer(abcflax.TrainConfig(steps=10))
    mesh = training.make_mesh(1, 4)
    step, params, opt_state, rows = training.sharded_train_step(graphdef, tx, params, tx.init(params), mesh)
    x = jax.device_put(tokens(), rows)
    step(params, opt_state, x, x, jax.random.key(0))
    assert seen and set(seen) == {mesh.size}


def test_the_backward_scan_reads_w_hh_transposed_in_float32_and_in_place_in_bf16(monkeypatch):
    """With the state in rows, the backward scan's per-step product contracts the gate axis of a transposed
    copy of ``w_hh`` in float32 and of ``w_hh`` itself in bfloat16, each the faster kernel for it; both give
    ``dgates @ w_hh^T``."""
    from jax.extend.core import jaxprs_in_params

    from abcflax import lstm

    monkeypatch.setattr(lstm, "COLUMN_STATE_MAX_BF16_ROWS", 0)  # rows, whatever the batch

    steps, batch, hidden = 4, 2, 3
    xproj = jax.random.normal(jax.random.key(1), (steps, batch, 4 * hidden))
    w_hh = jax.random.normal(jax.random.key(2), (hidden, 4 * hidden))
    zeros = jnp.zeros((batch, hidden))

    def backward_dots(precision):
        loss = lambda w: lstm.lstm_scan(xproj, w, zeros, zeros, precision)[0].sum()
        found = []

        def visit(inner, in_scan):
            for eqn in inner.eqns:
                if eqn.primitive.name == "dot_general" and in_scan:
                    found.append((eqn.invars[1].aval.shape, eqn.params["dimension_numbers"][0]))
                for sub in jaxprs_in_params(eqn.params):
                    visit(sub, in_scan or eqn.primitive.name == "scan")

        visit(jax.make_jaxpr(jax.grad(loss))(w_hh).jaxpr, False)
        return found[-1]  # the reverse scan comes after the forward one

    assert backward_dots(FLOAT32) == ((4 * hidden, hidden), ((1,), (0,)))
    assert backward_dots(Precision(recurrence=True)) == ((hidden, 4 * hidden), ((1,), (1,)))
    dgates = jax.random.normal(jax.random.key(3), (batch, 4 * hidden))
    for bf16, tolerance in ((False, 1e-6), (True, 0.05)):
        np.testing.assert_allclose(lstm.backward_product(w_hh, bf16)(dgates), dgates @ w_hh.T, atol=tolerance,
                                   rtol=tolerance)


def test_bf16_train_step_has_bf16_products_only_when_asked():
    """With bfloat16 products the compiled step has bfloat16 matmuls (and they accumulate in float32); without
    them it has none. Its loss is the float32 step's to within bfloat16 rounding, and it still moves every
    parameter."""
    model = abcflax.create_model(ModelConfig(vocab_size=23, embed_dim=8, hidden=12, layers=2, dropout=0.2))
    graphdef, params = nnx.split(model)
    tx = make_optimizer(TrainConfig(warmup_steps=1, learning_rate=1e-2))
    x = tokens(batch=4, length=10)
    arguments = (params, tx.init(params), x, jnp.roll(x, -1, axis=1), jax.random.key(0))
    mixed = Precision(wide=True, recurrence=True)
    texts = {precision: jax.jit(make_train_step(graphdef, tx, precision=precision)).lower(*arguments).as_text()
             for precision in (FLOAT32, mixed)}
    assert "bf16" not in texts[FLOAT32]
    assert "dot_general" in texts[mixed] and "bf16" in texts[mixed]
    new_params, _, loss = jax.jit(make_train_step(graphdef, tx, precision=mixed))(*arguments)
    _, _, reference = jax.jit(make_train_step(graphdef, tx))(*arguments)
    assert abs(float(loss) - float(reference)) < 0.01 * float(reference)
    unchanged = [jax.tree_util.keystr(path) for (path, old), new in
                 zip(jax.tree_util.tree_leaves_with_path(params), jax.tree_util.tree_leaves(new_params))
                 if np.array_equal(np.asarray(old), np.asarray(new))]
    assert not unchanged, f"parameters not updated: {unchanged}"


def test_bf16_is_for_training_only():
    """The model called without a ``precision`` (evaluation, scoring) has no bfloat16 in it, whatever it was
    trained with."""
    model = abcflax.create_model(CONFIG)
    assert "bf16" not in jax.jit(lambda x: model(x)[0]).lower(tokens()).as_text()


def test_bf16_stepping_weights_give_logits_close_to_float32():
    from abcflax import lstm

    model = abcflax.create_model(CONFIG, seed=3)
    weights = model.weights()
    half = lstm.stepping_weights(weights)
    assert all(w.dtype == jnp.bfloat16 for w_ih, w_hh, _ in half.layers for w in (w_ih, w_hh))
    assert half.head_kernel.dtype == jnp.bfloat16 and half.embedding.dtype == jnp.float32
    ids = tokens()
    carry_f = carry_h = model.init_carry(3)
    for t in range(5):
        logits_f, carry_f = lstm.step(weights, ids[:, t], carry_f)
        logits_h, carry_h = lstm.step(half, ids[:, t], carry_h)
        assert logits_h.dtype == jnp.float32 and carry_h[0][0].dtype == jnp.float32  # the state stays float32
        np.testing.assert_allclose(np.asarray(logits_h), np.asarray(logits_f), atol=0.05)
        assert not np.array_equal(np.asarray(logits_h), np.asarray(logits_f))  # the rounding did happen


def test_the_sampler_steps_in_bf16_where_the_setting_says(monkeypatch):
    from abcflax import runtime

    for setting, expected in (("1", True), ("0", False)):
        monkeypatch.setenv(runtime.STEP_BF16_ENV, setting)
        runtime.bf16_stepping.cache_clear()
        assert runtime.bf16_stepping() is expected
    monkeypatch.delenv(runtime.STEP_BF16_ENV)
    runtime.bf16_stepping.cache_clear()
    assert runtime.bf16_stepping() is (runtime.cpu_has_bf16() is True)
    runtime.bf16_stepping.cache_clear()


def test_the_sampler_takes_the_same_kernels_at_every_batch_size(tiny_model, monkeypatch):
    """bf16 kernels pay only from 8 rows, but a tune must come out the same alone as in a batch: the
    choice is the process's (``runtime.bf16_stepping``), never the batch's."""
    from abcflax import runtime, sample

    seen = []
    real = sample._generate

    def spy(*args, **kwargs):
        seen.append(kwargs["bf16"])
        return real(*args, **kwargs)

    monkeypatch.setattr(sample, "_generate", spy)
    prompt = "X:1\nT:t\nM:6/8\nL:1/8\nK:G\nGAG GAB|"
    for setting in (True, False):
        monkeypatch.setattr(runtime, "bf16_stepping", lambda setting=setting: setting)
        for rows in (1, 8):
            sample.generate(tiny_model, [sample.Request(prompt, 0, row) for row in range(rows)], max_chars=300)
    assert seen == [True, True, False, False]
