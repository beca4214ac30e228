"""The sampler: fake models, constraints that hold against a model that wants to break them, seeds."""

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import abcflax
from abcflax import constrain, sample
from abcflax.errors import InputError
from abcflax.vocab import Vocab

VOCAB = Vocab.from_texts(["abcdefgABCDEFG,'^_=z/23468|:[]\"#m7 \n>(<~.KLMTX:1"])


def fake_step(preferred):
    """A 'model' whose next-character logits always favour ``preferred`` characters."""
    logits = jnp.full((VOCAB.size,), -5.0).at[jnp.array([VOCAB.id_of(c) for c in preferred])].set(5.0)

    def step_fn(token_B, carry):
        return jnp.broadcast_to(logits, (token_B.shape[0], VOCAB.size)), carry

    return step_fn, logits


def run_fake(preferred, batch=2, max_new=20, temperature=1.0):
    step_fn, logits = fake_step(preferred)
    keys = jnp.stack([jax.random.key(i) for i in range(batch)])
    start = jnp.broadcast_to(logits, (batch, VOCAB.size))
    tokens, finished, stuck, _ = jax.jit(
        lambda: sample.sample_loop(step_fn, (), start, keys, None, None, None, jnp.float32(temperature),
                                   jnp.int32(0), jnp.float32(1.0), max_new=max_new, eos_id=VOCAB.eos_id,
                                   constrained=False))()
    return np.asarray(tokens), np.asarray(finished)


def test_unconstrained_sampler_follows_the_fake_model():
    tokens, finished = run_fake("a", temperature=0.0)
    assert (tokens == VOCAB.id_of("a")).all() and not finished.any()


def test_sampler_stops_at_end_marker():
    tokens, finished = run_fake("\x03", temperature=0.0)
    assert finished.all()
    assert (tokens[:, 0] == VOCAB.eos_id).all() and (tokens[:, 1:] == sample.PAD).all()


def test_top_k_and_top_p_filter():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    top_k = sample.filter_logits(logits, 1.0, 2, 1.0)
    assert np.isfinite(np.asarray(top_k)).tolist() == [[True, True, False, False]]
    top_p = sample.filter_logits(logits, 1.0, 0, 0.7)
    assert np.isfinite(np.asarray(top_p)).tolist() == [[True, True, False, False]]


class FakeModel:
    """Stands in for ``abcflax.Model``: a module whose logits favour invalid ABC."""

    def __init__(self, preferred):
        self.vocab = VOCAB
        self.preferred = preferred


def constrained_run(prompt, preferred, *, bars=None, until="end", max_chars=300, batch=16):
    tables_host = sample.grammar_tables(VOCAB.chars)
    tables = constrain.device_tables(tables_host, VOCAB.chars)
    place = constrain.place_prompt(prompt, tables_host, VOCAB.chars)
    step_fn, logits = fake_step(preferred)
    keys = jnp.stack([jax.random.key(i) for i in range(batch)])
    cstate = constrain.start_state([place] * batch)
    limits = sample._limits([place] * batch, max_chars, bars, until, 4)
    tokens, finished, stuck, bars_written = jax.jit(
        lambda: sample.sample_loop(step_fn, (), jnp.broadcast_to(logits, (batch, VOCAB.size)), keys, cstate,
                                   limits, tables, jnp.float32(1.0), jnp.int32(0), jnp.float32(1.0),
                                   max_new=max_chars, eos_id=VOCAB.eos_id, constrained=True))()
    texts = [prompt + place.text_suffix + VOCAB.decode([t for t in row if t >= 0]) for row in np.asarray(tokens)]
    return texts, np.asarray(finished), np.asarray(stuck), np.asarray(bars_written)


BAD_TASTE = ["|||", "z/", "[[[", '""', "((", "#m7", ":", "\n\n", "2222", ">>"]


@pytest.mark.parametrize("preferred", BAD_TASTE)
def test_constrained_sampler_writes_valid_abc_for_a_model_that_wants_invalid_abc(preferred):
    prompt = 'X:1\nT:t\nM:6/8\nL:1/8\nK:G\n|:"G"GAB d2B|"D"A2F D2'
    texts, finished, stuck, _ = constrained_run(prompt, preferred)
    assert finished.all() and not stuck.any()
    check_tune = getattr(abcflax, "check_tune", None)
    for text in texts:
        assert text.rstrip().endswith(("|]", "||", ":|")), text
        if check_tune is not None:
            problems = check_tune(text)
            assert not problems, (text, [str(p) for p in problems])


TRIPLET = re.compile(r"\(3((?:[_^=]?[A-Ga-gz][,']*(\d*/*\d*)){3})")


@pytest.mark.parametrize("meter, unit, body", [("4/4", "1/8", "GABc dedB|"), ("3/4", "1/4", "G A B|"),
                                              ("2/4", "1/16", "A2cB A2E2|"), ("6/8", "1/8", "GAB d2B|")])
@pytest.mark.parametrize("preferred", ["(3", "(3/", "(3//", "(32", "(3d/e/f/", "(3d2/"])
def test_triplets_of_any_one_value_fill_their_bars_and_never_dead_end(meter, unit, body, preferred):
    """Triplets of halves, quarters and doubles as well as unit notes, all three notes of one value, and no row
    stuck, for a model that wants triplets everywhere, of every length, wherever they fit or not."""
    prompt = f"X:1\nT:t\nM:{meter}\nL:{unit}\nK:G\n{body}"
    texts, finished, stuck, _ = constrained_run(prompt, preferred, max_chars=160)
    assert finished.all() and not stuck.any()
    for text in texts:
        assert not abcflax.check_tune(text), (text, [str(p) for p in abcflax.check_tune(text)])
        for group in TRIPLET.finditer(text[len(prompt):]):
            lengths = re.findall(r"[A-Ga-gz][,']*(\d*/*\d*)", group.group(1))
            assert len({length.replace("/2", "/") for length in lengths}) == 1, group.group(0)


@pytest.mark.parametrize("body", ["GABc dedB/(3", "GABc dedB/(3 ", "GABc ded(3", "G3A B/(3", "GABc dedB/(3d",
                                  "GABc dedB/(3d/", "GABc dedB/(3^d/"])
@pytest.mark.parametrize("preferred", ["c", "c2", "c/"])
def test_a_triplet_the_prompt_stops_at_finds_notes_short_enough_for_its_bar(body, preferred):
    # "dedB/(3" with a sixteenth of the bar left needs thirty-second notes, a value no continuation wrote:
    # every row stuck, whatever the model wanted
    prompt = f"X:1\nT:t\nM:4/4\nL:1/8\nK:G\n{body}"
    texts, finished, stuck, _ = constrained_run(prompt, preferred, max_chars=120)
    assert finished.all() and not stuck.any()
    assert all(not abcflax.check_tune(text) for text in texts)


def written_lengths(text):
    return re.findall(r"[A-Ga-gz\]][,']*(\d*/*\d*)", re.sub(r'"[^"]*"', "", text))


def test_a_continuation_writes_odd_note_values_only_where_its_prompt_does():
    # a model fond of '3' and '/4' wrote "D3/4A/4" to fill the bar; 3/4 and 1/4 units come only from the prompt
    plain = "X:1\nT:t\nM:4/4\nL:1/8\nK:G\n|:GAB2 d2B2|A3B c2d2|"
    texts, finished, stuck, _ = constrained_run(plain, "A3/4", max_chars=200)
    assert finished.all() and not stuck.any()
    lengths = {length for text in texts for length in written_lengths(text[len(plain):])}
    assert lengths and not lengths & {"3/4", "/4", "//", "5", "7"}, lengths
    odd = "X:1\nT:t\nM:4/4\nL:1/8\nK:G\n|:GAB2 d3/4c/4B2|A3B c2d2|"
    texts, finished, stuck, _ = constrained_run(odd, "A3/4", max_chars=200)
    assert finished.all() and not stuck.any()
    assert any("3/4" in written_lengths(text[len(odd):]) for text in texts)


def test_value_mask_follows_the_prompt_and_the_bar():
    from abcflax import grammar

    def values(prompt):
        place = constrain.place_prompt(prompt, sample.grammar_tables(VOCAB.chars), VOCAB.chars)
        return {v for k, v in enumerate(grammar.VALUES) if place.values >> k & 1}

    assert values("X:1\nM:4/4\nL:1/8\nK:G\nGABc d2") == constrain.COMMON_VALUES
    assert values("X:1\nM:4/4\nL:1/8\nK:G\nGABc d7|e/4") == constrain.COMMON_VALUES | {336, 12}
    assert values('X:1\nM:4/4\nL:1/8\nK:G\n"G7"GABc d2') == constrain.COMMON_VALUES  # not a note "G7"
    assert values("X:1\nM:3/16\nL:1/4\nK:G\nG") == set(grammar.VALUES)  # a bar of 3/4 unit needs them all


def test_features_follow_the_prompt():
    def features(prompt):
        return constrain.place_prompt(prompt, sample.grammar_tables(VOCAB.chars), VOCAB.chars).features

    assert features("X:1\nM:4/4\nL:1/8\nK:G\nGABc d2") == 0
    assert features('X:1\nM:4/4\nL:1/8\nK:G\n"G"GABc d2') == constrain.FEATURE_CHORD_SYMBOL
    assert features('X:1\nM:4/4\nL:1/8\nK:G\n"^slow"GABc d2') == 0  # an annotation, not a chord symbol
    assert features("X:1\nM:4/4\nL:1/8\nK:G\n[GB]ABc d2") == constrain.FEATURE_NOTE_CHORD
    assert features("X:1\nM:4/4\nL:1/8\nK:G\n|:GABc d2B2|1 GABc d4:|2 GABc") == 0  # an ending is no chord
    assert features("X:1\nM:4/4\nL:1/8\nK:G\n") == constrain.ALL_FEATURES  # a header alone: the model's choice
    assert features('X:1\nM:4/4\nL:1/8\nK:G\n"G') == constrain.ALL_FEATURES  # no note yet


@pytest.mark.parametrize("preferred", ['"[', '[1', '"[a2|'])
def test_a_plain_melody_is_continued_without_chord_symbols_or_note_chords(preferred):
    # a model fond of them, trained on tunebooks with chords, wrote "G" and [GB] into a melody without any
    prompt = "X:1\nT:t\nM:4/4\nL:1/8\nK:G\n|:GAB2 d2B2|A3B c2d2|"
    texts, finished, stuck, _ = constrained_run(prompt, preferred + "abc|:")
    assert finished.all() and not stuck.any()
    continuations = [text[len(prompt):] for text in texts]
    assert not any('"' in c or re.search(r"\[[=^_]*[A-Ga-g]", c) for c in continuations), continuations
    assert any("[1" in c for c in continuations)  # a '[' that opens an ending is still written
    chorded = "X:1\nT:t\nM:4/4\nL:1/8\nK:G\n|:[GB]AB2 d2B2|A3B c2d2|"
    texts, finished, stuck, _ = constrained_run(chorded, preferred + "abc|:")
    assert finished.all() and not stuck.any()
    assert any(re.search(r"\[[=^_]*[A-Ga-g]", text[len(chorded):]) for text in texts)


@pytest.mark.parametrize("bars", [1, 3])
def test_bars_option_adds_exactly_that_many_bars(bars):
    prompt = "X:1\nT:t\nM:3/4\nL:1/4\nK:D\nA|d2f|"
    texts, finished, _, written = constrained_run(prompt, "abc|", bars=bars)
    assert finished.all() and (written == bars).all()
    for text in texts:
        added = text[len(prompt):]
        assert added.count("|") - added.count("||") - added.count("|]") + added.count("|]") >= bars


@pytest.mark.parametrize("bars", [2, 6])
def test_bars_are_all_written_even_by_a_model_that_wants_to_end(bars):
    prompt = "X:1\nT:t\nM:4/4\nL:1/8\nK:D\n|:ABcd efga|"
    texts, finished, _, written = constrained_run(prompt, "|]:\x03", bars=bars, max_chars=1000)  # room for every bar
    assert (written == bars).all()
    assert finished.all()
    for text in texts:
        assert len(abcflax.analyze_tune(text).bars) == 1 + bars, text


@pytest.mark.parametrize("bars", [1, 2, 3])
@pytest.mark.parametrize("preferred", ["[1", "[1|]", '"[1:'])
def test_a_first_ending_is_opened_only_with_room_for_the_second(bars, preferred):
    # a first ending opened in the last bar asked for (or a bar line in it that cannot close it there) took
    # the tune a bar past --bars, for the second ending it owes
    prompt = "X:1\nT:t\nM:4/4\nL:1/8\nK:D\n|:ABcd efga|"
    texts, finished, stuck, written = constrained_run(prompt, preferred, bars=bars, max_chars=1000, batch=64)
    assert finished.all() and not stuck.any()
    assert (written == bars).all(), [t[len(prompt):] for t, w in zip(texts, written) if w != bars]
    if bars == 3:
        assert any("[1" in text[len(prompt):] for text in texts)


@pytest.mark.parametrize("prompt_body", ["|:ABcd efga|", "ABcd efga|", "|:ABcd efga|1 abag fedc|"])
def test_the_final_bar_line_is_written_only_at_the_end(prompt_body):
    # a model fond of |] wrote it inside an open repeat, with music after it: a player reads it as the end
    prompt = "X:1\nT:t\nM:4/4\nL:1/8\nK:D\n" + prompt_body
    texts, finished, stuck, _ = constrained_run(prompt, "|]a", max_chars=400, batch=32)
    assert finished.all() and not stuck.any()
    for text in texts:
        continuation = text[len(prompt):].rstrip()
        assert "|]" not in continuation[:-2], continuation


def test_until_section_closes_a_part_that_runs_on_after_its_bar_limit():
    # inside an open repeat only :| ends the part; a model that never writes it is closed after 16 bars
    prompt = "X:1\nT:t\nM:4/4\nL:1/8\nK:D\n|:ABcd efga|"
    texts, finished, stuck, written = constrained_run(prompt, "abcdefg|", until="section", max_chars=2000)
    assert finished.all() and not stuck.any()
    assert (written <= sample.SECTION_MAX_BARS).all() and (written >= 1).all(), written
    assert all(text.rstrip().endswith(":|") and "||" not in text[len(prompt):] for text in texts)


def test_until_section_stops_at_a_closing_bar_line():
    prompt = "X:1\nT:t\nM:4/4\nL:1/8\nK:D\n|:ABcd efga|"
    texts, finished, _, _ = constrained_run(prompt, "abcdefg|:", until="section")
    assert finished.all()
    assert all(text.rstrip().endswith(":|") for text in texts)


def test_prompt_ending_mid_note_and_mid_chord_symbol_is_continued():
    for prompt in ['X:1\nT:t\nM:6/8\nL:1/8\nK:G\nGAB d2', 'X:1\nT:t\nM:6/8\nL:1/8\nK:G\nGAB "D', "X:1\nM:6/8\nK:G\n(3"]:
        texts, finished, stuck, _ = constrained_run(prompt, "abc", batch=4)
        assert finished.all() and not stuck.any()
        assert all(t.startswith(prompt) for t in texts)


def test_complete_is_reproducible_and_keeps_the_prompt(tiny_model):
    prompt = 'X:1\nT:Reel\nM:6/8\nL:1/8\nK:G\n|:"G"GAG GAB|"D"ABA ABd|'
    first = abcflax.complete(prompt, model=tiny_model, seed=7, max_chars=300)
    again = abcflax.complete(prompt, model=tiny_model, seed=7, max_chars=300)
    other = [abcflax.complete(prompt, model=tiny_model, seed=s, max_chars=300) for s in (1, 2, 3)]
    assert first == again and first.startswith(prompt)
    assert any(o != first for o in other)
    assert first.rstrip().endswith(("|]", "||", ":|"))


def test_batched_equals_one_at_a_time(tiny_model):
    prompts = ['X:1\nT:Jig\nM:6/8\nL:1/8\nK:G\nGAG GAB|', 'X:1\nT:Waltz\nM:3/4\nL:1/4\nK:D\nde|f2 e|d2 B|']
    batched = abcflax.complete_many(prompts, model=tiny_model, seed=5, max_chars=250)
    single = [abcflax.complete_many([p], model=tiny_model, seed=5, max_chars=250, rows=[i])[0]
              for i, p in enumerate(prompts)]
    assert batched == single


def test_unknown_character_names_line_and_column(tiny_model):
    with pytest.raises(InputError, match=r"prompt:6:4: character '€'"):
        abcflax.complete("X:1\nT:t\nM:6/8\nL:1/8\nK:G\nGAG€", model=tiny_model)


@pytest.mark.parametrize("bad", ["", "   \n", "X:1\nT:no key\nM:6/8\n", 42])
def test_bad_prompts_are_input_errors(tiny_model, bad):
    with pytest.raises(InputError):
        abcflax.complete(bad, model=tiny_model)


@pytest.mark.parametrize("option", [dict(temperature=float("nan")), dict(temperature=float("inf")),
                                    dict(temperature=-0.5), dict(top_p=float("nan")), dict(top_p=float("inf"))])
def test_sampling_options_that_are_no_finite_numbers_are_refused(tiny_model, option):
    # NaN passes every comparison a range check makes: a NaN temperature once sampled as if it were 1e-6
    with pytest.raises(InputError, match="temperature must be a finite number|top_p must be in"):
        abcflax.complete("X:1\nT:t\nM:6/8\nL:1/8\nK:G\nGAG", model=tiny_model, **option)
    with pytest.raises(abcflax.UsageError):
        sample.check_sampling_options(option.get("temperature", 1.0), None, option.get("top_p", 1.0), None,
                                      abcflax.UsageError)


def counting_step(token_B, carry_B):
    """A fake model with state: the carry sums the tokens fed; the logits favour the end marker when the sum is
    a multiple of 5, else character (sum mod 7) + 2, so tunes end at different times."""
    carry_B = carry_B + token_B
    favour = jnp.where(carry_B % 5 == 0, VOCAB.eos_id, carry_B % 7 + 2)
    return jnp.where(jnp.arange(VOCAB.size)[None, :] == favour[:, None], 8.0, 0.0), carry_B


def pooled_run(slots, count=None, tunes=7, max_new=12):
    start_carry = jnp.arange(tunes, dtype=jnp.int32) * 3  # every tune starts from its own state
    logits = jnp.zeros((tunes, VOCAB.size))
    keys = jnp.stack([jax.random.key(i) for i in range(tunes)])
    tokens, finished, stuck, _ = jax.jit(
        lambda: sample.sample_loop(counting_step, start_carry, logits, keys, None, None, None, jnp.float32(0.7),
                                   jnp.int32(0), jnp.float32(1.0), max_new=max_new, eos_id=VOCAB.eos_id,
                                   constrained=False, slots=slots, count=count))()
    return np.asarray(tokens), np.asarray(finished)


@pytest.mark.parametrize("slots", [1, 2, 3, 7])
def test_rows_refilled_from_the_pool_write_the_same_tunes(slots):
    """Continuous batching: a tune's characters do not depend on which row it ran in, or when."""
    all_at_once, _ = pooled_run(slots=None)
    pooled, finished = pooled_run(slots=slots)
    assert (pooled == all_at_once).all()
    assert (pooled != sample.PAD).any(axis=1).all()  # every tune was written
    lengths = (pooled != sample.PAD).sum(axis=1)
    assert finished.any() and len(set(lengths.tolist())) > 1  # tunes ended at different times


def test_padding_tunes_beyond_count_are_never_written():
    tokens, finished = pooled_run(slots=2, count=5)
    reference, _ = pooled_run(slots=None)
    assert (tokens[:5] == reference[:5]).all()
    assert (tokens[5:] == sample.PAD).all() and not finished[5:].any()


def test_pooled_tunes_that_end_early_free_their_row_for_the_next():
    step_fn, logits = fake_step("\x03")  # every tune ends at once
    keys = jnp.stack([jax.random.key(i) for i in range(6)])
    tokens, finished, _, _ = jax.jit(
        lambda: sample.sample_loop(step_fn, (), jnp.broadcast_to(logits, (6, VOCAB.size)), keys, None, None, None,
                                   jnp.float32(0.0), jnp.int32(0), jnp.float32(1.0), max_new=5,
                                   eos_id=VOCAB.eos_id, constrained=False, slots=2))()
    assert np.asarray(finished).all()
    assert (np.asarray(tokens)[:, 0] == VOCAB.eos_id).all() and (np.asarray(tokens)[:, 1:] == sample.PAD).all()


def test_compose_with_fewer_rows_than_tunes_matches_complete(tiny_model):
    prompts = ['X:1\nT:Jig\nM:6/8\nL:1/8\nK:G\nGAG GAB|', 'X:1\nT:Waltz\nM:3/4\nL:1/4\nK:D\nde|f2 e|d2 B|'] * 3
    requests = [sample.Request(p, 5, i) for i, p in enumerate(prompts)]
    pooled = sample.generate(tiny_model, requests, max_chars=250, slots=2)
    single = [abcflax.complete_many([p], model=tiny_model, seed=5, max_chars=250, rows=[i], candidates=1)[0]
              for i, p in enumerate(prompts)]
    assert [r.text for r in pooled] == single


def test_inverse_cdf_draws_follow_the_distribution():
    """``sample_rows`` draws each character with its softmax probability; masked (-inf) ones never."""
    probs = np.array([0.5, 0.0, 0.3, 0.15, 0.05])
    logits = jnp.log(jnp.asarray(probs))  # log 0 = -inf: a masked character
    draws = 20_000
    keys = jax.random.split(jax.random.key(11), draws)
    chosen = np.asarray(jax.jit(sample.sample_rows)(keys, jnp.broadcast_to(logits, (draws, 5))))
    counts = np.bincount(chosen, minlength=5) / draws
    assert counts[1] == 0
    np.testing.assert_allclose(counts, probs, atol=0.012)  # ~3.5 standard deviations at 20,000 draws


@pytest.mark.parametrize("seed", [0, 1, 42, 2**31, 2**32 - 1, 2**32 + 5, -1, -5])
def test_host_built_seed_data_is_jax_random_key(seed):
    # the sampler builds key data on the host (no eager JAX program at startup); it must be key(seed)'s
    expected = np.asarray(jax.random.key_data(jax.random.key(seed)))
    np.testing.assert_array_equal(sample._seed_data([seed], [0])[0], expected)


def test_later_draws_of_a_seed_have_keys_of_their_own():
    data = sample._seed_data([7, 7, 7, 8], [0, 1, 2, 1])
    assert len({tuple(row) for row in data.tolist()}) == 4
    np.testing.assert_array_equal(data[0], np.asarray(jax.random.key_data(jax.random.key(7))))


def test_complete_warns_when_max_chars_cuts_the_bars_asked_for(tiny_model):
    prompt = "X:1\nT:t\nM:4/4\nL:1/8\nK:G\nGABc dedB|"
    with pytest.warns(abcflax.AbcflaxWarning, match=r"^\d+ of the 500 bars asked for fit in 200 characters"):
        abcflax.complete(prompt, model=tiny_model, bars=500, max_chars=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error", abcflax.AbcflaxWarning)
        abcflax.complete(prompt, model=tiny_model, bars=500, max_chars=200, until="section")  # a part, not bars
        abcflax.complete(prompt, model=tiny_model, bars=500, max_chars=200, constrain=False)  # no bars counted


@pytest.mark.parametrize("bars", [0, -1, sample.MAX_BARS + 1, 2**31])
def test_a_bar_count_out_of_range_is_refused_before_sampling(tiny_model, bars):
    # 2**31 bars overflowed the sampler's int32 counters: an internal error, not a clear line
    with pytest.raises(InputError, match="bars must be from 1 to"):
        abcflax.complete("X:1\nT:t\nM:6/8\nL:1/8\nK:G\nGAG", model=tiny_model, bars=bars)


# ---------------------------------------------------------------- phrase lengths: where a part may end

def part_lengths(text):
    """(bars, is a second ending) of each part ``text`` ends, counted as ``constrain.prompt_parts`` counts."""
    analysis = abcflax.analyze_tune(text)
    second = {e.bar for e in analysis.events if e.kind == "ending" and e.text.lstrip("[|")[:1] != "1"}
    found, length, in_second = [], 0.0, False
    for bar in analysis.bars:
        in_second |= bar.index in second
        length += float(bar.duration / bar.expected)
        if bar.closing in ("||", "|]", "|:", ":|", "::", ":|:", ":||:") or not bar.closing:
            found.append((round(length), in_second))
            length, in_second = 0.0, False
    return found


@pytest.mark.parametrize("text, expected", [
    ("X:1\nT:t\nM:4/4\nL:1/8\nK:G\n", (0, 0, 0)),
    ("X:1\nT:t\nM:4/4\nL:1/8\nK:G\nGABc dedB|dedB dedB|c2", (2, 0, 0)),
    # a pickup and a short last bar make one bar: the part is 8 bars; the next part has only its pickup
    ("X:1\nT:t\nM:4/4\nL:1/8\nK:G\nD2|" + "GABc dedB|" * 7 + "c2A2 A2:|\nB|c", (0, 0, 8)),
    # the part's first time through: 2 bars, then a 1-bar first ending; the second ending sets no length
    ("X:1\nT:t\nM:4/4\nL:1/8\nK:G\n|:GABc dedB|dedB dedB|1c2ec B2dB:|2c2A2 A2BA||", (0, 1, 3)),
    ("X:1\nT:t\nM:3/4\nL:1/8\nK:G\n" + "GABc dB|" * 6 + "|" + "GABc dB|" * 2, (2, 0, 6)),
    ("X:1\nT:t\nM:4/4\nL:1/8\nK:G\n|:GABc dedB|dedB dedB:|\n", (0, 1, 0)),  # 2 bars set no length
])
def test_prompt_parts_counts_the_bars_of_the_open_part_and_the_last_whole_one(text, expected):
    assert constrain.prompt_parts(text) == expected


@pytest.mark.parametrize("preferred", ["||", "|:", ":|", "|]\x03", "abc", "abc|1", '"G"ab'])
def test_parts_end_only_at_phrase_lengths(preferred):
    # left free, the model ended parts after 3, 6, 9, 11, 17... bars; a fake model that wants to end a part at
    # every bar line, or never, writes parts of 4 or 8 bars (second endings of at most 2)
    prompt = "X:1\nT:t\nM:4/4\nL:1/8\nK:D\nABcd efga|"
    texts, finished, stuck, _ = constrained_run(prompt, preferred, max_chars=1200, batch=8)
    assert finished.all() and not stuck.any()
    for text in texts:
        parts = part_lengths(text)
        for bars, second in parts[1:-1]:  # the prompt's part is 8 bars too; the last may close a tune cut short
            assert (bars <= 2) if second else bars in (constrain.SHORT_PART_BARS, constrain.PHRASE_BARS), (parts, text)
        assert parts[0] in ((4, False), (8, False)), (parts, text)


def test_a_prompts_own_part_length_is_kept():
    prompt = "X:1\nT:t\nM:3/4\nL:1/8\nK:G\n|:" + "GABc dB|" * 5 + "GABc dB:|\n"
    texts, finished, stuck, _ = constrained_run(prompt, "abc|:", max_chars=1200, batch=8)
    assert finished.all() and not stuck.any()
    lengths = {bars for text in texts for bars, second in part_lengths(text)[1:-1] if not second}
    assert lengths and lengths <= {4, 6, 8, 12}, lengths
    assert 6 in lengths


def test_free_meter_parts_are_left_free():
    prompt = "X:1\nT:t\nM:none\nL:1/8\nK:D\nABcd efga|"
    texts, finished, stuck, _ = constrained_run(prompt, "ab||", max_chars=400, batch=8)
    assert finished.all() and not stuck.any()
    assert any(re.search(r"\|\|[^|]*\|\|", text[len(prompt):]) for text in texts)  # a part of one bar


@pytest.mark.parametrize("part_bars", [0, 6])
def test_part_bars_sets_or_frees_the_part_length(part_bars):
    prompt = "X:1\nT:t\nM:4/4\nL:1/8\nK:D\nABcd efga|"
    step_fn, logits = fake_step("ab||")
    tables_host = sample.grammar_tables(VOCAB.chars)
    place = constrain.place_prompt(prompt, tables_host, VOCAB.chars)
    limits = sample._limits([place] * 8, 600, None, "end", 4, part_bars)
    assert (np.asarray(limits.part_length) == part_bars).all() and not np.asarray(limits.part_early).any()
    keys = jnp.stack([jax.random.key(i) for i in range(8)])
    tokens, finished, stuck, _ = jax.jit(
        lambda: sample.sample_loop(step_fn, (), jnp.broadcast_to(logits, (8, VOCAB.size)), keys,
                                   constrain.start_state([place] * 8), limits,
                                   constrain.device_tables(tables_host, VOCAB.chars), jnp.float32(1.0),
                                   jnp.int32(0), jnp.float32(1.0), max_new=600, eos_id=VOCAB.eos_id,
                                   constrained=True))()
    assert np.asarray(finished).all() and not np.asarray(stuck).any()
    texts = [prompt + VOCAB.decode([t for t in row if t >= 0]) for row in np.asarray(tokens)]
    lengths = {bars for text in texts for bars, second in part_lengths(text)[:-1] if not second}
    if part_bars:
        assert lengths == {6}, lengths
    else:
        assert 1 in lengths, lengths  # a model fond of || ends parts after one bar when they are free


def test_part_bars_out_of_range_is_refused(tiny_model):
    with pytest.raises(abcflax.AbcflaxError, match="part_bars"):
        abcflax.complete("X:1\nT:t\nM:4/4\nL:1/8\nK:D\nABcd efga|", model=tiny_model, part_bars=-1)


@pytest.mark.parametrize("written, blamed_on_prompt", [("''", True), ("", True), ("/2 c", True),
                                                        ("A2|B", False), ("|", False)])
def test_a_dead_end_inside_the_prompts_last_bar_is_the_prompts_and_one_after_it_the_decoders(
        written, blamed_on_prompt):
    """A row stuck before it wrote a bar line could not finish the bar the prompt began (a prompt cut where the
    grammar cannot go on, such as ``(3d`` with a sixteenth's room left): one clear line that says so. Stuck
    after a bar line of its own, it is a decoder bug to report."""
    from abcflax.sample import DeadEnd, Pending

    chars = sorted(set("''/2 cA|B") | {"x"})
    ids = [chars.index(ch) for ch in written] + [chars.index("x")]  # the last id is the one that had no successor
    tokens = np.full((1, 8), -1, np.int32)
    tokens[0, :len(ids)] = ids
    arrays = (tokens, np.array([False]), np.array([True]), np.array([0]))
    pending = Pending(["X:1\nK:G\n"], arrays, lambda row: "".join(chars[i] for i in row), [0])
    with pytest.raises(DeadEnd) as raised:
        pending.results()
    message = str(raised.value)
    assert ("cannot finish tune 1's last bar" in message) == blamed_on_prompt
    assert ("please report" in message) == (not blamed_on_prompt)
