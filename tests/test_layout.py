"""The recurrence's layout chosen by timing both on this machine (abcflax.layout)."""

import json

import pytest

from abcflax import layout, lstm, runtime
from abcflax.errors import UsageError
from abcflax.training import make_mesh


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder and a quick timing (few steps, one round): the cache file's path."""
    monkeypatch.setenv(runtime.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(runtime.LAYOUT_ENV, raising=False)
    monkeypatch.setattr(layout, "TIMED_STEPS", 4)
    monkeypatch.setattr(layout, "ROUNDS", 1)
    return tmp_path / layout.CACHE_NAME


def no_timing(*args):
    raise AssertionError("timed although it should not have")


def test_the_faster_layout_is_chosen_and_cached(cache, monkeypatch):
    mesh = make_mesh(1)
    for timings, expected in (({True: 1.0, False: 2.0}, True), ({True: 2.0, False: 1.0}, False)):
        cache.unlink(missing_ok=True)
        monkeypatch.setattr(layout, "time_layouts", lambda *args, timings=timings: timings)
        assert layout.recurrence_in_columns(256, 8, 32, mesh, lstm.FLOAT32) is expected
        monkeypatch.setattr(layout, "time_layouts", no_timing)  # the second run reads the cache
        assert layout.recurrence_in_columns(256, 8, 32, mesh, lstm.FLOAT32) is expected
        (verdict,) = json.loads(cache.read_text()).values()
        assert verdict["columns"] is expected and verdict["columns_ms"] == timings[True] * 1e3


def test_columns_must_win_clearly(cache, monkeypatch):
    """Near a tie rows stay: columns must time COLUMNS_MARGIN faster."""
    mesh = make_mesh(1)
    for columns_s, rows_s, expected in ((1.0, 1.1, True), (1.0, 1.04, False), (1.0, 1.0, False), (1.1, 1.0, False)):
        cache.unlink(missing_ok=True)
        monkeypatch.setattr(layout, "time_layouts", lambda *args, t=(columns_s, rows_s): {True: t[0], False: t[1]})
        assert layout.recurrence_in_columns(256, 8, 32, mesh, lstm.FLOAT32) is expected


def test_each_shape_and_precision_has_its_own_verdict(cache, monkeypatch):
    mesh, calls = make_mesh(1), []
    monkeypatch.setattr(layout, "time_layouts", lambda *args: calls.append(args) or {True: 1.0, False: 2.0})
    for hidden, batch, precision in ((256, 8, lstm.FLOAT32), (512, 8, lstm.FLOAT32), (256, 16, lstm.FLOAT32),
                                     (256, 8, lstm.Precision(recurrence=True)), (256, 8, lstm.FLOAT32)):
        layout.recurrence_in_columns(hidden, batch, 32, mesh, precision)
    assert len(calls) == 4 and len(json.loads(cache.read_text())) == 4


def test_real_timing_of_both_layouts(cache):
    """The real thing on a small shape: both layouts run, each gets a time, and the verdict is kept."""
    timings = layout.time_layouts(256, 8, make_mesh(1), lstm.FLOAT32, steps=4)
    assert set(timings) == {True, False} and all(seconds > 0 for seconds in timings.values())
    chosen = layout.recurrence_in_columns(256, 8, 32, make_mesh(1), lstm.FLOAT32)
    (verdict,) = json.loads(cache.read_text()).values()
    assert verdict["columns"] is chosen and verdict["columns_ms"] > 0 and verdict["rows_ms"] > 0


def test_the_environment_decides_without_timing(cache, monkeypatch):
    monkeypatch.setattr(layout, "time_layouts", no_timing)
    for value, expected in (("rows", False), ("columns", True), (" Columns ", True)):
        monkeypatch.setenv(runtime.LAYOUT_ENV, value)
        assert layout.recurrence_in_columns(1024, 8, 32, make_mesh(1), lstm.FLOAT32) is expected
    assert not cache.exists()
    monkeypatch.setenv(runtime.LAYOUT_ENV, "diagonal")
    with pytest.raises(UsageError, match="ABCFLAX_RECURRENCE_LAYOUT='diagonal'"):
        layout.recurrence_in_columns(1024, 8, 32, make_mesh(1), lstm.FLOAT32)


def test_a_small_recurrence_follows_the_rule_of_thumb(cache, monkeypatch):
    monkeypatch.setattr(layout, "time_layouts", no_timing)
    assert layout.recurrence_in_columns(128, 8, 32, make_mesh(1), lstm.FLOAT32) is False
    assert layout.recurrence_in_columns(128, 8, 32, make_mesh(1), lstm.Precision(recurrence=True)) is True
    assert not cache.exists()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"x": 1}', "\x00\xff"])
def test_a_damaged_cache_is_timed_again_and_rewritten(cache, monkeypatch, content):
    cache.write_text(content, encoding="latin-1")
    monkeypatch.setattr(layout, "time_layouts", lambda *args: {True: 2.0, False: 1.0})
    assert layout.recurrence_in_columns(256, 8, 32, make_mesh(1), lstm.FLOAT32) is False
    assert any(verdict.get("columns") is False for verdict in json.loads(cache.read_text()).values()
               if isinstance(verdict, dict))


def test_an_unwritable_cache_folder_costs_only_the_timing(tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv(runtime.CACHE_ENV, str(blocker / "abcflax"))  # a folder inside a file: cannot exist
    monkeypatch.delenv(runtime.LAYOUT_ENV, raising=False)
    monkeypatch.setattr(layout, "time_layouts", lambda *args: {True: 1.0, False: 2.0})
    assert layout.recurrence_in_columns(256, 8, 32, make_mesh(1), lstm.FLOAT32) is True


def test_training_runs_in_the_layout_chosen_for_it(tmp_path, monkeypatch):
    """train() asks for the layout with the run's own shape and mesh, and its step runs in that layout."""
    import abcflax
    from abcflax import training
    from tests.conftest import tiny_texts

    asked, used = [], set()
    monkeypatch.setattr(training.layout, "recurrence_in_columns",
                        lambda hidden, batch, seq_len, mesh, precision: asked.append((hidden, batch, seq_len)) or True)
    real = lstm._columns
    monkeypatch.setattr(lstm, "_columns", lambda w, batch, precision: used.add(precision.columns) or real(
        w, batch, precision))
    config = abcflax.TrainConfig(steps=2, batch_size=8, seq_len=16, eval_every=2, eval_chars=500)
    abcflax.train(tiny_texts(2), tmp_path / "run", abcflax.preset("tiny"), config)
    assert asked == [(abcflax.preset("tiny").hidden, 8, 16)]
    assert True in used  # the training step's layers (validation scoring keeps the rule: None)


def test_the_timing_never_runs_longer_windows_than_training(cache, monkeypatch):
    seen = []
    monkeypatch.setattr(layout, "time_layouts", lambda *args: seen.append(args[-1]) or {True: 2.0, False: 1.0})
    monkeypatch.setattr(layout, "TIMED_STEPS", 64)
    layout.recurrence_in_columns(256, 8, 16, make_mesh(1), lstm.FLOAT32)
    layout.recurrence_in_columns(512, 8, 500, make_mesh(1), lstm.FLOAT32)
    assert seen == [16, 64]


@pytest.mark.parametrize("kind", ["deep", "folder", "huge"])
def test_a_cache_that_is_not_a_small_json_file_counts_as_empty(cache, monkeypatch, kind):
    if kind == "deep":
        cache.write_text("[" * 100_000)  # json.loads raises RecursionError, not ValueError
    elif kind == "folder":
        cache.mkdir()
    else:
        cache.write_text(json.dumps({"x": "y" * (layout.MAX_CACHE_BYTES + 1)}))
    monkeypatch.setattr(layout, "time_layouts", lambda *args: {True: 1.0, False: 2.0})
    assert layout.recurrence_in_columns(256, 8, 32, make_mesh(1), lstm.FLOAT32) is True


def test_a_resumed_run_keeps_the_layout_it_trained_in(tmp_path, monkeypatch):
    """The layout is stored with the checkpoint; a resume reuses it whatever the timing would say now."""
    import abcflax
    from abcflax import checkpoint, training
    from tests.conftest import tiny_texts

    monkeypatch.delenv(runtime.LAYOUT_ENV, raising=False)
    verdicts = iter([True, False])
    monkeypatch.setattr(training.layout, "recurrence_in_columns", lambda *args: next(verdicts))
    config = abcflax.TrainConfig(steps=2, batch_size=8, seq_len=16, eval_every=1, eval_chars=500)
    abcflax.train(tiny_texts(2), tmp_path / "run", abcflax.preset("tiny"), config, stop_after=1)
    assert checkpoint.load(tmp_path / "run").meta[training.LAYOUT_META] is True
    used = set()
    real = lstm._columns
    monkeypatch.setattr(lstm, "_columns", lambda w, batch, precision: used.add(precision.columns) or real(
        w, batch, precision))
    abcflax.train(tiny_texts(2), tmp_path / "run", abcflax.preset("tiny"), config, resume=True)
    assert True in used and False not in used  # the stored verdict, not the second timing's
    assert checkpoint.load(tmp_path / "run").meta[training.LAYOUT_META] is True
