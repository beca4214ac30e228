"""Stopping extra draws early: the in-loop watch of the last note agrees with the host's ending rank, groups
resolve when their kept draw is known, and the kept draws are the same as without stopping."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from abcflax import constrain, endings, grammar, last_note, sample
from abcflax.sample import Request
from test_sample import VOCAB



def random_step(seed, batch):
    """A 'model' with random logits at every step (each row its own stream): constrained, it writes every
    construct of the grammar (accidentals, chords, octave marks, tuplets, bar lines) in random order."""
    def step_fn(token_B, carry):
        keys = jax.random.wrap_key_data(carry[0])
        pairs = jax.vmap(jax.random.split)(keys)
        logits = jax.vmap(lambda k: jax.random.normal(k, (VOCAB.size,)))(pairs[:, 1]) * 3.0
        return logits, (jax.random.key_data(pairs[:, 0]),)

    return step_fn, (jax.random.key_data(jax.random.split(jax.random.key(seed), batch)),)


def watched_run(prompt, seed, batch=24, max_chars=240):
    """Continue ``prompt`` ``batch`` times, each draw a group of its own (so none is stopped): the texts, and
    the loop's verdict per draw (finished on the tonic, as far as the watch can tell)."""
    host = sample.grammar_tables(VOCAB.chars)
    tables = constrain.device_tables(host, VOCAB.chars)
    place = constrain.place_prompt(prompt, host, VOCAB.chars)
    text = prompt + place.text_suffix
    step_fn, carry = random_step(seed, batch)
    keys = jnp.stack([jax.random.key(seed * 1000 + i) for i in range(batch)])
    cstate = constrain.start_state([place] * batch)
    limits = sample._limits([place] * batch, max_chars, None, "end", 2)
    ending = sample._ending([text] * batch, [place] * batch, list(range(batch)), host, batch)
    logits = jnp.zeros((batch, VOCAB.size))
    tokens, finished, stuck, _, stopped, tonic = jax.jit(
        lambda: sample.sample_loop(step_fn, carry, logits, keys, cstate, limits, tables, jnp.float32(1.0),
                                   jnp.int32(0), jnp.float32(1.0), max_new=max_chars, eos_id=VOCAB.eos_id,
                                   constrained=True, ending=ending))()
    assert not np.asarray(stuck).any() and not np.asarray(stopped).any()
    texts = [text + VOCAB.decode([t for t in row if t >= 0]) for row in np.asarray(tokens)]
    return texts, np.asarray(finished), np.asarray(tonic)


PROMPTS = [
    "X:1\nT:t\nM:6/8\nL:1/8\nK:G\n|:GAB d2B|",
    "X:1\nT:t\nM:4/4\nL:1/8\nK:Dm\nDEFG A2 ^c2|d",  # minor, a sharp in force in the open bar
    "X:1\nT:t\nM:3/4\nL:1/8\nK:Ador\nA2 c2 e2|",  # a mode
    "X:1\nT:t\nM:2/4\nL:1/8\nK:Bb\nB2 _e2|",  # flats
    "X:1\nT:t\nM:4/4\nL:1/8\nK:D exp ^f ^c\nd2 f2 a2 ^g2|",  # explicit accidentals in the key
    "X:1\nT:t\nM:6/8\nL:1/8\nK:E\nE2 ^",  # ends after an accidental: the next letter's pitch is out of sight
    "X:1\nT:t\nM:6/8\nL:1/8\nK:C\nC2 [CE",  # ends inside a chord
    "X:1\nT:t\nM:6/8\nL:1/8\nK:none\nC2 E",  # no tonic
    "X:1\nT:t\nM:4/4\nL:1/8\nK:G\nG4 [K:F] F2 _B,",  # a key change, ends after a letter (octave marks may follow)
]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_the_watch_never_claims_a_tonic_the_host_does_not_see(prompt):
    texts, finished, tonic = watched_run(prompt, seed=len(prompt))
    assert finished.all()
    ranks = [endings.ending_rank(text) for text in texts]
    claimed = [rank for rank, said in zip(ranks, tonic) if said]
    assert all(rank == endings.TONIC for rank in claimed), [(t, r) for t, r, s in zip(texts, ranks, tonic) if s]


def test_the_watch_sees_most_tonic_endings_of_plain_prompts():
    # not a watch that says "no" to everything: with the prompt's bar closed, it finds the tonic endings the
    # host finds, except notes whose letter had an accidental earlier in their bar (it does not follow octaves)
    seen = missed = 0
    for seed, prompt in enumerate([PROMPTS[0], PROMPTS[2], PROMPTS[3]]):
        texts, _, tonic = watched_run(prompt, seed=seed, batch=48)
        for text, said in zip(texts, tonic):
            if endings.ending_rank(text) == endings.TONIC:
                seen += bool(said)
                missed += not said
    assert seen >= 5 and seen >= 2 * missed, (seen, missed)


def test_a_key_without_a_tonic_never_stops_draws():
    _, _, tonic = watched_run(PROMPTS[7], seed=3)
    assert not tonic.any()


def test_the_roles_of_characters_in_the_grammar():
    host = sample.grammar_tables(VOCAB.chars)
    start = grammar.Tables.index_of(grammar.Syn(bar_start=False))
    role = lambda ch: int(host.pitch_role[start, VOCAB.id_of(ch)])
    assert role("^") == grammar.ROLE_ACCIDENTAL and role("G") == grammar.ROLE_LETTER
    assert role("[") == grammar.ROLE_CHORD_OPEN and role("z") == 0 and role('"') == 0
    after_bar = grammar.Tables.index_of(grammar.Syn(bar_start=True))
    bracket = host.next_state[after_bar, VOCAB.id_of("[")]
    assert host.pitch_role[after_bar, VOCAB.id_of("[")] == 0  # a chord or an ending: the next character says
    assert host.pitch_role[bracket, VOCAB.id_of("c")] == grammar.ROLE_LETTER | grammar.ROLE_CHORD_OPEN
    assert host.phase[host.next_state[start, VOCAB.id_of("^")]] == grammar.PHASE_BEFORE_LETTER


def resolved(done, tonic, groups):
    owners = np.repeat(np.arange(len(groups)), groups)
    first = np.searchsorted(owners, owners, side="left")
    last = np.searchsorted(owners, owners, side="right") - 1
    return np.asarray(sample.resolved_draws(jnp.array(done), jnp.array(tonic), jnp.array(first),
                                            jnp.array(last))).tolist()


def test_a_group_resolves_once_its_first_tonic_draw_and_all_before_it_are_done():
    # group of 3: draw 1 finished on the tonic, draw 0 still running -> not yet
    assert resolved([False, True, False], [False, True, False], [3]) == [False] * 3
    # draw 0 done too -> resolved, whatever draw 2 does
    assert resolved([True, True, False], [False, True, False], [3]) == [True] * 3
    # the first draw on the tonic decides at once
    assert resolved([True, False, False], [True, False, False], [3]) == [True] * 3
    # all done, none on the tonic: nothing to stop (the choice needs every draw)
    assert resolved([True, True, True], [False] * 3, [3]) == [False] * 3
    # groups are separate: the second group's tonic draw has an open draw before it in its own group only
    assert resolved([True, False, False, True], [True, False, False, True], [2, 2]) == [True, True, False, False]


KEEP_PROMPTS = ["X:1\nT:t\nM:6/8\nL:1/8\nK:G\nGAG GAB|", "X:1\nT:t\nM:4/4\nL:1/8\nK:D\nd2 fa g2 e2|",
                "X:1\nT:t\nM:3/4\nL:1/8\nK:Am\nA2 c2 e2|"]


def kept(model, stop_early, seed, draws=6):
    requests = [Request(p, seed, row, draw=d) for row, p in enumerate(KEEP_PROMPTS) for d in range(draws)]
    pending = sample.dispatch(model, requests, max_chars=300, stop_early=stop_early)
    results = pending.results()
    stopped = np.asarray(pending.arrays[4]).sum() if len(pending.arrays) > 4 else 0
    return [r.text for r in endings.keep_best_draws(results, draws)], stopped


def test_stopping_early_keeps_the_same_draws(tiny_model):
    stops = 0
    for seed in range(4):
        early, stopped = kept(tiny_model, True, seed)
        full, _ = kept(tiny_model, False, seed)
        assert early == full
        stops += stopped
    assert stops > 0  # some draws were in fact stopped


def test_a_tune_is_sampled_again_when_the_host_disagrees(tiny_model, monkeypatch):
    requests = [Request(p, seed, row, draw=d) for seed in range(3) for row, p in enumerate(KEEP_PROMPTS)
                for d in range(6)]
    full = [r.text for r in sample.generate(tiny_model, requests, max_chars=300, stop_early=False)]
    reruns = []
    real_dispatch = sample.dispatch

    def counting(model, requests, **options):
        if not options.get("stop_early", True):
            reruns.append(len(requests))
        return real_dispatch(model, requests, **options)

    monkeypatch.setattr(sample, "dispatch", counting)
    # a host that finds no tonic ending anywhere: every stop was premature
    monkeypatch.setattr(endings, "ending_rank", lambda text: endings.ELSEWHERE)
    pending = real_dispatch(tiny_model, requests, max_chars=300)
    early = [r.text for r in pending.results()]
    assert np.asarray(pending.arrays[4]).any() and reruns  # draws were stopped, and their tunes sampled again
    assert early == full  # every draw of those tunes as a full run writes it
