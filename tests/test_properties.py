"""Property-based tests: random and mutated ABC never makes an exception other than AbcflaxError escape
the tunebook reader, the checker, complete, harmonize or export."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import abcflax

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "data" / "examples").glob("*.abc"))
REAL_TUNES = [path.read_text(encoding="utf-8") for path in EXAMPLES]
ABC_ALPHABET = "ABCDEFGabcdefgzxZ|:[]()\"!^_=,'/<>{}~.0123456789 \n%-+KMLTX"  # the characters ABC is made of


@st.composite
def mutated_tune(draw) -> str:
    """A real tune with a few characters inserted, deleted or replaced (ABC characters or any at all)."""
    text = draw(st.sampled_from(REAL_TUNES))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(text)))
        new = draw(st.one_of(st.text(alphabet=ABC_ALPHABET, min_size=1, max_size=4),
                             st.text(min_size=1, max_size=2)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        if action == "insert":
            text = text[:position] + new + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 5)):]
        else:
            text = text[:position] + new + text[position + len(new):]
    return text


random_abc = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=ABC_ALPHABET, max_size=300),
    st.builds(lambda body: "X:1\nM:4/4\nL:1/8\nK:G\n" + body, st.text(alphabet=ABC_ALPHABET, max_size=200)),
)
any_abc = st.one_of(random_abc, mutated_tune())


def only_abcflax_errors(function, *args, **kwargs):
    """Call; an AbcflaxError is an allowed answer to bad input, anything else fails the test."""
    try:
        return function(*args, **kwargs)
    except abcflax.AbcflaxError as exc:
        assert str(exc) and "\n" not in str(exc).strip(), "errors are one line"
        return None


@settings(max_examples=150, deadline=None)
@given(any_abc)
def test_read_tunebook_never_raises(text):
    tunes, problems = abcflax.read_tunebook(text, "prop.abc")
    assert all(p.source == "prop.abc" and p.line >= 1 for p in problems)
    assert all(t.text.startswith(t.header[0]) for t in tunes)


@settings(max_examples=150, deadline=None)
@given(any_abc)
def test_check_tune_never_raises_and_never_hits_its_safety_net(text):
    problems = abcflax.check_tune(text)
    assert not any("internal checker error" in p.message for p in problems)
    assert all(p.line >= 1 and p.column >= 1 for p in problems)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_abc, st.sampled_from(["musicxml", "mid"]))
def test_export_bytes_raises_only_abcflax_errors(text, fmt):
    data = only_abcflax_errors(abcflax.export_bytes, text, fmt)
    if data is not None:
        assert data[:5] in (b"<?xml", b"MThd\x00")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(text=any_abc)
def test_complete_raises_only_abcflax_errors(text, tiny_model):
    result = only_abcflax_errors(abcflax.complete, text, model=tiny_model, max_chars=300, seed=1)
    if result is not None:
        assert len(result) >= len(text.strip()) // 2  # the prompt is kept (as written, or its model view)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(text=any_abc, method=st.sampled_from(["rules", "model"]))
def test_harmonize_raises_only_abcflax_errors(text, method, tiny_model):
    result = only_abcflax_errors(abcflax.harmonize, text, model=tiny_model if method == "model" else None,
                                 method=method)
    if result is not None:
        assert abcflax.strip_chords(result).replace(" ", "") != "" or not text.strip()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_real_examples_are_clean(path):
    """The mutation base is valid ABC, so a failure above is about the mutation."""
    text = path.read_text(encoding="utf-8")
    tunes, problems = abcflax.read_tunebook(text, str(path))
    assert tunes and not problems


@settings(max_examples=150, deadline=None)
@given(any_abc, st.integers(-3, 3))
def test_transpose_and_repair_raise_only_abcflax_errors(text, fifths):
    only_abcflax_errors(abcflax.transpose, text, fifths)
    only_abcflax_errors(abcflax.repair_tunebook, text)


NOTE_TOKENS = st.tuples(st.sampled_from(["", "^", "_", "=", "^^", "__"]), st.sampled_from("CDEFGABcdefgab"),
                        st.sampled_from(["", ",", "'"]), st.sampled_from(["", "2", "/2"]))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["C", "G", "D", "F", "Bb", "Am", "Em", "ADor", "GMix"]), st.integers(-2, 2),
       st.lists(st.lists(NOTE_TOKENS, min_size=1, max_size=6), min_size=1, max_size=4))
def test_transposing_moves_every_pitch_by_the_interval(key, fifths, bars):
    from abcflax.abc_check import analyze_tune
    from abcflax.transposition import interval

    body = "|".join(" ".join("".join(token) for token in bar) for bar in bars) + "|]\n"
    tune = f"X:1\nM:none\nL:1/8\nK:{key}\n{body}"

    def pitches(text: str) -> list[int]:
        return [p for e in analyze_tune(text).events if e.kind in ("note", "chord") for p in e.pitches]

    try:
        moved = abcflax.transpose(tune, fifths)
    except abcflax.InputError:  # a double accidental pushed past a double: refused, not misspelled
        return
    assert pitches(moved) == [p + interval(fifths)[1] for p in pitches(tune)]
