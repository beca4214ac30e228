"""Training: validation loss drops, checkpoints round-trip and are checked, resume is exact."""

import csv
import dataclasses

import numpy as np
import pytest

import abcflax
from abcflax import checkpoint
from abcflax.errors import CheckpointError, UsageError

from conftest import tiny_texts


def small_config(**overrides):
    values = dict(steps=30, batch_size=8, seq_len=32, learning_rate=1e-2, warmup_steps=5, eval_every=10,
                  eval_chars=2000, valid_share=0.2, seed=3)
    values.update(overrides)
    return abcflax.TrainConfig(**values)


def params_of(path):
    return checkpoint.load(path).params


def flat(tree, prefix=""):
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(flat(value, f"{prefix}/{key}"))
        return out
    return {prefix: np.asarray(tree)}


def test_validation_loss_drops(tiny_model_dir):
    with open(tiny_model_dir / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 2
    assert float(rows[-1]["valid_bpc"]) < float(rows[0]["valid_bpc"]) - 0.3
    assert (tiny_model_dir / "loss.png").stat().st_size > 1000


def test_checkpoint_round_trip(tiny_model_dir):
    ckpt = checkpoint.load(tiny_model_dir)
    again = checkpoint.from_bytes(checkpoint.to_bytes(ckpt))
    assert again.model_config == ckpt.model_config and again.vocab == ckpt.vocab and again.step == ckpt.step
    for key, value in flat(ckpt.params).items():
        np.testing.assert_array_equal(value, flat(again.params)[key])
    data = (tiny_model_dir / "model.msgpack").read_bytes()
    assert b"pickle" not in data[:64]


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_checkpoint_is_refused(tmp_path, tiny_model_dir, damage):
    data = (tiny_model_dir / "model.msgpack").read_bytes()
    broken = {"truncate": data[: len(data) // 2], "flip": data[:-10] + bytes([data[-10] ^ 1]) + data[-9:],
              "garbage": b"\x00" * 100, "empty": b""}[damage]
    target = tmp_path / "model.msgpack"
    target.write_bytes(broken)
    with pytest.raises(CheckpointError):
        abcflax.load_model(target)


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no model found"):
        abcflax.load_model(tmp_path / "nowhere")


def test_resume_gives_the_same_parameters(tmp_path):
    texts = tiny_texts(3)
    straight = abcflax.train(texts, tmp_path / "a", abcflax.preset("tiny"), small_config())
    abcflax.train(texts, tmp_path / "b", abcflax.preset("tiny"), small_config(), stop_after=10)
    assert checkpoint.load(tmp_path / "b").step == 10
    resumed = abcflax.train(texts, tmp_path / "b", abcflax.preset("tiny"), small_config(), resume=True)
    a, b = flat(params_of(straight)), flat(params_of(resumed))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    with open(tmp_path / "b" / "log.csv") as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [10, 20, 30]


def test_existing_run_needs_resume(tmp_path):
    abcflax.train(tiny_texts(2), tmp_path, abcflax.preset("tiny"), small_config(steps=2, eval_every=2))
    with pytest.raises(UsageError, match="--resume"):
        abcflax.train(tiny_texts(2), tmp_path, abcflax.preset("tiny"), small_config(steps=2))


def test_evaluate_bits_per_char(tiny_model):
    bpc, chars = abcflax.bits_per_char(tiny_model.module, tiny_model.vocab, tiny_texts(1))
    assert chars == sum(len(t) + 1 for t in tiny_texts(1))
    assert 0 < bpc < np.log2(tiny_model.vocab.size)


def test_fine_tune_starts_from_the_given_model(tmp_path, tiny_model_dir):
    source = checkpoint.load(tiny_model_dir)
    texts = tiny_texts(2)
    tuned = abcflax.train(texts, tmp_path / "tuned", abcflax.preset("small"),  # preset ignored: source's shape
                          small_config(steps=1, eval_every=1, learning_rate=1e-9, warmup_steps=1),
                          init_from=tiny_model_dir)
    result = checkpoint.load(tuned)
    assert result.model_config == source.model_config and result.vocab == source.vocab
    assert result.step == 1 and result.meta["init_from"] == str(tiny_model_dir)
    before, after = flat(source.params), flat(result.params)
    for key in before:  # one step at a negligible learning rate: still the source's weights
        np.testing.assert_allclose(after[key], before[key], atol=1e-6, err_msg=key)
    fresh = flat(params_of(abcflax.train(texts, tmp_path / "fresh", abcflax.preset("tiny"),
                                         small_config(steps=1, eval_every=1, learning_rate=1e-9, warmup_steps=1))))
    assert any(fresh[key].shape != before[key].shape or not np.allclose(fresh[key], before[key]) for key in before)


def test_chords_after_copies_need_the_marker_in_the_vocabulary(tmp_path, tiny_model_dir):
    # a model whose vocabulary cannot spell the "I:chords after" line fine-tunes on the tunes as written
    assert "I" not in checkpoint.load(tiny_model_dir).vocab.chars
    texts = tiny_texts(2)
    tuned = abcflax.train(texts, tmp_path / "tuned", abcflax.preset("tiny"), small_config(steps=1, chords_after=1),
                          weights=[2] * len(texts), init_from=tiny_model_dir)
    assert checkpoint.load(tuned).meta["chords_after"] is False
    fresh = abcflax.train(texts, tmp_path / "fresh", abcflax.preset("tiny"), small_config(steps=1, chords_after=1),
                          weights=[2] * len(texts))
    assert checkpoint.load(fresh).meta["chords_after"] is True and "I" in checkpoint.load(fresh).vocab.chars


def test_fine_tune_refuses_characters_outside_the_models_vocabulary(tmp_path, tiny_model_dir):
    with pytest.raises(CheckpointError, match="cannot fine-tune"):
        abcflax.train(["X:1\nT:t\nK:C\nCDE€|\n"] * 4, tmp_path / "x", abcflax.preset("tiny"), small_config(steps=1),
                      init_from=tiny_model_dir)


def test_a_run_clears_temp_files_a_killed_write_left(tmp_path):
    # SIGKILL between writing a temp file and renaming it leaves ".loss.png.<random>.tmp" behind
    out = tmp_path / "run"
    out.mkdir()
    stale = [out / ".loss.png.abc123.tmp", out / ".model.msgpack.x.tmp", out / ".log.csv.y.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    keep = out / "notes.tmp"  # not ours: left alone
    keep.write_text("mine")
    abcflax.train(tiny_texts(2), out, abcflax.preset("tiny"), small_config(steps=2, eval_every=2))
    assert not any(path.exists() for path in stale) and keep.exists()


def test_reverse_training_reads_every_tune_backwards(tmp_path):
    import dataclasses

    from abcflax.training import build_stream

    texts = tiny_texts(1)
    vocab = abcflax.Vocab.from_texts(texts)
    forward, backward = build_stream(texts, vocab), build_stream(texts, vocab, reverse=True)
    starts = np.flatnonzero(forward == vocab.bos_id)
    assert np.array_equal(starts, np.flatnonzero(backward == vocab.bos_id))  # markers stay where they were
    for start, end in zip(starts, list(starts[1:]) + [len(forward)]):
        assert backward[end - 1] == vocab.eos_id
        assert np.array_equal(backward[start + 1:end - 1], forward[start + 1:end - 1][::-1])
    config = dataclasses.replace(small_config(), reverse=True, steps=4, eval_every=4)
    path = abcflax.train(texts, tmp_path / "r", abcflax.preset("tiny"), config)
    assert checkpoint.load(path).meta["reverse"] is True
    assert abcflax.load_model(path).reverse


def test_dropout_from_trains_the_early_steps_without_dropout(tmp_path):
    texts = tiny_texts(3)
    with_dropout = dataclasses.replace(abcflax.preset("tiny"), dropout=0.5)
    without = dataclasses.replace(abcflax.preset("tiny"), dropout=0.0)
    config = small_config(steps=6, eval_every=3)
    late = flat(params_of(abcflax.train(texts, tmp_path / "late", with_dropout,
                                        dataclasses.replace(config, dropout_from=6))))
    plain = flat(params_of(abcflax.train(texts, tmp_path / "plain", without, config)))
    early = flat(params_of(abcflax.train(texts, tmp_path / "early", with_dropout,
                                         dataclasses.replace(config, dropout_from=0))))
    for key in plain:  # dropout off for all 6 steps: the same run as a model without dropout
        np.testing.assert_array_equal(late[key], plain[key], err_msg=key)
    assert any(not np.array_equal(early[key], plain[key]) for key in plain)


def test_a_run_resumed_across_dropout_from_is_exact(tmp_path):
    texts = tiny_texts(3)
    shape = dataclasses.replace(abcflax.preset("tiny"), dropout=0.5)
    config = small_config(steps=8, eval_every=2, dropout_from=4)
    straight = flat(params_of(abcflax.train(texts, tmp_path / "a", shape, config)))
    abcflax.train(texts, tmp_path / "b", shape, config, stop_after=2)
    resumed = flat(params_of(abcflax.train(texts, tmp_path / "b", shape, config, resume=True)))
    for key in straight:
        np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)


def test_checkpoints_from_before_dropout_from_keep_dropout_from_the_start():
    stored = abcflax.TrainConfig().to_dict()
    del stored["dropout_from"]
    assert abcflax.TrainConfig.from_dict(stored).dropout_from == 0
    assert abcflax.TrainConfig.from_dict({**stored, "dropout_from": 7}).dropout_from == 7


def test_cpu_has_bf16_reads_the_flags_line(tmp_path):
    from abcflax.runtime import cpu_has_bf16

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\n")
    assert cpu_has_bf16(info) is True
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\n")
    assert cpu_has_bf16(info) is True
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")  # no bf16 instructions
    assert cpu_has_bf16(info) is False
    info.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")  # an ARM CPU: not these flags
    assert cpu_has_bf16(info) is None
    assert cpu_has_bf16(tmp_path / "absent") is None


def test_precision_of_reads_both_bf16_switches():
    from abcflax.lstm import FLOAT32, Precision
    from abcflax.training import precision_of

    assert precision_of(abcflax.TrainConfig()) == FLOAT32
    assert precision_of(abcflax.TrainConfig(bf16_matmuls=True)) == Precision(wide=True)
    assert precision_of(abcflax.TrainConfig(bf16_recurrence=True)) == Precision(recurrence=True)
    assert abcflax.TrainConfig.from_dict({"bf16_matmuls": True}).bf16_recurrence is False  # a session-15 checkpoint


def test_nesterov_switch_changes_the_update_and_is_off_for_old_checkpoints():
    import jax.numpy as jnp

    from abcflax.training import check_configs, make_optimizer

    params = {"w": jnp.ones(3)}
    grads = {"w": jnp.array([1.0, -2.0, 0.5])}

    def second_update(config):
        tx = make_optimizer(config)
        state = tx.init(params)
        _, state = tx.update(grads, state, params)
        updates, _ = tx.update(grads, state, params)
        return updates["w"]

    plain, nesterov = abcflax.TrainConfig(steps=10, warmup_steps=0), abcflax.TrainConfig(steps=10, warmup_steps=0,
                                                                                           nesterov=True)
    assert not jnp.allclose(second_update(plain), second_update(nesterov))
    assert abcflax.TrainConfig.from_dict({"bf16_matmuls": True}).nesterov is False  # a checkpoint before the field
    assert abcflax.TrainConfig.from_dict(nesterov.to_dict()).nesterov is True
    with pytest.raises(abcflax.UsageError, match="nesterov must be True or False"):
        check_configs(abcflax.preset("tiny"), abcflax.TrainConfig(nesterov="yes"))
