"""Choosing how a tune ends: the tonic, its chord, and the draws kept by complete and compose."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from click.testing import CliRunner

import abcflax
from abcflax import sample
from abcflax.endings import (ELSEWHERE, TONIC, TONIC_CHORD, best_ending, draw_count, ending_rank, keep_best_draws,
                             tonic_triad)
from abcflax.errors import UsageError
from abcflax_cli.common import main_group as main


def tune(key: str, body: str, meter: str = "4/4") -> str:
    return f"X:1\nT:t\nM:{meter}\nL:1/8\nK:{key}\n{body}\n"


@pytest.mark.parametrize("key, triad", [
    ("G", (7, 11, 2)), ("Em", (4, 7, 11)), ("Ador", (9, 0, 4)), ("D mixolydian", (2, 6, 9)),
    ("Bb", (10, 2, 5)), ("F#m", (6, 9, 1)), ("C clef=bass", (0, 4, 7)),
])
def test_the_tonic_triad_follows_the_mode(key, triad):
    assert tonic_triad(key) == triad


@pytest.mark.parametrize("key", ["none", "HP", "Hp", "clef=treble", ""])
def test_a_key_without_a_tonic_prefers_nothing(key):
    assert tonic_triad(key) is None
    assert ending_rank(tune(key, "GABc dedB|G8|]")) == ELSEWHERE


@pytest.mark.parametrize("key, last, rank", [
    ("G", "G8", TONIC), ("G", "g8", TONIC), ("G", "B8", TONIC_CHORD), ("G", "D8", TONIC_CHORD),
    ("G", "A8", ELSEWHERE), ("G", "^G8", ELSEWHERE),  # G sharp is not the tonic
    ("Em", "E8", TONIC), ("Em", "G8", TONIC_CHORD), ("Em", "^G8", ELSEWHERE),  # a major third in E minor
    ("Ador", "A8", TONIC), ("Ador", "F8", ELSEWHERE), ("F", "B8", ELSEWHERE), ("F", "_B8", ELSEWHERE),
    ("D", "F8", TONIC_CHORD),  # F is F sharp in D major: the third
    ("G", "[GBd]8", TONIC), ("G", "[Bd]8", TONIC_CHORD), ("G", "[GA]8", ELSEWHERE),
    ("G", "G6 z2", TONIC),  # a closing rest is not the last note
    ("G", "G6 {a}g2", TONIC),  # nor is a grace note
])
def test_the_last_note_ranks_the_ending(key, last, rank):
    assert ending_rank(tune(key, f"GABc dedB|{last}|]")) == rank


def test_the_key_in_force_at_the_end_decides():
    assert ending_rank(tune("G", "GABc dedB|[K:D]D8|]")) == TONIC
    assert ending_rank(tune("G", "GABc dedB|\nK:Am\nA8|]")) == TONIC
    assert ending_rank(tune("G", "GABc dedB|\nK:Am\nG8|]")) == ELSEWHERE


def test_a_bar_accidental_carries_to_the_last_note():
    assert ending_rank(tune("G", "GABc ^GABc|G8|]")) == TONIC  # the accidental ended with its bar
    assert ending_rank(tune("G", "GABc dedB|^G4 G4|]")) == ELSEWHERE


def test_a_tune_without_notes_ends_nowhere():
    assert ending_rank(tune("G", "z8|]")) == ELSEWHERE


def test_the_first_finished_tonic_ending_is_kept():
    a, b, c = tune("G", "A8|]"), tune("G", "B8|]"), tune("G", "G8|]")
    assert best_ending([a, b, c, c]) == 2
    assert best_ending([a, b, a]) == 1  # no tonic: the tonic chord
    assert best_ending([a, a]) == 0  # neither: the first draw
    assert best_ending([c, a, c], [False, True, True]) == 2  # a draw cut off by its limit comes last
    assert best_ending([c, a], [False, False]) == 0


@dataclass
class Drawn:
    text: str
    finished: bool = True


def test_draws_are_grouped_per_tune_in_order():
    g, a = tune("G", "G8|]"), tune("G", "A8|]")
    results = [Drawn(a), Drawn(g), Drawn(a), Drawn(a), Drawn(g), Drawn(g)]
    assert keep_best_draws(results, 2) == [results[1], results[2], results[4]]
    assert keep_best_draws(results, 1) == results


@pytest.mark.parametrize("candidates, temperature, constrain, until, draws", [
    (8, 1.0, True, "end", 8), (1, 1.0, True, "end", 1), (8, 0.0, True, "end", 1),
    (8, 1.0, False, "end", 1), (8, 1.0, True, "section", 1),
])
def test_draws_only_where_a_choice_of_ending_exists(candidates, temperature, constrain, until, draws):
    assert draw_count(candidates, temperature, constrain, until) == draws


@pytest.mark.parametrize("candidates", [0, 65, -1, 2.5, True, "8"])
def test_a_bad_candidate_count_is_a_usage_error(candidates):
    with pytest.raises(UsageError, match="candidates must be an integer in 1..64"):
        draw_count(candidates, 1.0, True, "end")


PROMPT = "X:1\nT:t\nM:6/8\nL:1/8\nK:G\nGAG GAB|"


def test_complete_keeps_the_draw_best_ending_picks(tiny_model):
    draws = sample.generate(tiny_model, [sample.Request(PROMPT, 3, 0, draw=d) for d in range(6)], max_chars=300)
    assert len({d.text for d in draws}) > 1  # the draws differ
    kept = draws[best_ending([d.text for d in draws], [d.finished for d in draws])]
    assert abcflax.complete(PROMPT, model=tiny_model, seed=3, max_chars=300, candidates=6) == kept.text
    assert abcflax.complete(PROMPT, model=tiny_model, seed=3, max_chars=300, candidates=1) == draws[0].text


def test_a_tunebook_keeps_each_tunes_own_best_draw(tiny_model):
    other = PROMPT.replace("X:1", "X:2").replace("K:G", "K:D")
    book, _ = abcflax.complete_tunebook(PROMPT + "\n\n" + other + "\n", model=tiny_model, seed=4, max_chars=300,
                                        candidates=4)
    alone = [abcflax.complete_many([p + "\n"], model=tiny_model, seed=4, max_chars=300, rows=[row], candidates=4)[0]
             for row, p in enumerate([PROMPT, other])]
    assert book == "\n".join(alone)


def test_compose_keeps_the_same_draw_as_complete(tiny_model):
    plans = abcflax.plan_tunes("K:G M:6/8 L:1/8\n", 3, model=tiny_model)
    composed = list(abcflax.compose(plans, model=tiny_model, seed=1, max_chars=300, candidates=4, batch_size=2))
    for plan, tune_out in zip(plans, composed):
        alone = abcflax.complete_many([plan.prompt], model=tiny_model, seed=1, max_chars=300, rows=[plan.row],
                                      candidates=4)[0]
        assert tune_out.text.split("\n", 2)[2] == alone.split("\n", 2)[2]  # the same music (X:, T: are set)


def test_greedy_and_raw_sampling_draw_once(tiny_model, monkeypatch):
    counts = []
    real = sample.dispatch

    def counting(model, requests, **options):
        counts.append(len(requests))
        return real(model, requests, **options)

    monkeypatch.setattr(sample, "dispatch", counting)
    abcflax.complete(PROMPT, model=tiny_model, temperature=0, max_chars=300)
    abcflax.complete(PROMPT, model=tiny_model, constrain=False, max_chars=300)
    abcflax.complete(PROMPT, model=tiny_model, max_chars=300)
    assert counts == [1, 1, 8]


def test_cli_candidates_option(tiny_model_dir, tmp_path):
    path = tmp_path / "t.abc"
    path.write_text(PROMPT + "\n")
    runner = CliRunner()
    one = runner.invoke(main, ["continue", str(path), "--model", str(tiny_model_dir), "--candidates", "1",
                               "--max-chars", "300", "--quiet"])
    assert one.exit_code == 0, one.output
    assert one.output == abcflax.complete(PROMPT + "\n", model=str(tiny_model_dir), max_chars=300,
                                          candidates=1)
    bad = runner.invoke(main, ["continue", str(path), "--model", str(tiny_model_dir), "--candidates", "0"])
    assert bad.exit_code == 2 and "--candidates" in bad.output


def test_a_tunebook_bigger_than_a_batch_runs_in_slots_with_the_same_tunes(tiny_model, monkeypatch):
    from abcflax import continuation

    book = "\n".join(PROMPT.replace("X:1", f"X:{i}").replace("K:G", f"K:{key}") + "\n"
                     for i, key in enumerate("GDAEC", start=1))
    whole, _ = abcflax.complete_tunebook(book, model=tiny_model, seed=2, max_chars=300, candidates=3)
    widths = []
    real_generate = continuation.generate

    def narrow(model, requests, **options):
        widths.append(options["slots"])
        return real_generate(model, requests, **options)

    monkeypatch.setattr(continuation, "auto_batch_size", lambda tunes, model, max_chars: 4)
    monkeypatch.setattr(continuation, "generate", narrow)
    assert abcflax.complete_tunebook(book, model=tiny_model, seed=2, max_chars=300, candidates=3)[0] == whole
    assert widths == [4]


@pytest.mark.parametrize("bf16", [False, True])
def test_candidates_1_is_the_first_draw_of_the_bundled_model_with_either_kernels(bf16, monkeypatch):
    """``--candidates 1`` gives the draw a batch keeps first, with the bundled model and float32 or bfloat16
    sampling kernels: XLA rounds a bfloat16 product of one or two rows differently from the same row among
    more, so the sampler runs at least ``BF16_MIN_ROWS`` rows (3 of 6 seeds of the kesh differed before)."""
    from abcflax import runtime

    monkeypatch.setattr(runtime, "bf16_stepping", lambda: bf16)
    model = abcflax.load_model(None)
    prompt = (abcflax.__path__[0] + "/../data/examples/the_kesh.abc")
    with open(prompt, encoding="utf-8") as handle:
        prompt = handle.read()
    for seed in (0, 2, 3):
        draws = sample.generate(model, [sample.Request(prompt, seed, 0, draw=d) for d in range(8)], max_chars=1200)
        assert abcflax.complete(prompt, model=model, seed=seed, candidates=1, max_chars=1200) == draws[0].text
