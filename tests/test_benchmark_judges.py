"""The validity benchmark's judge (benchmarks/validity_unseen.py): a figure is only as good as what counts."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from validity_unseen import added_part, bars_ok, parse  # noqa: E402

HEAD = "X:1\nT:T\nM:6/8\nL:1/8\nK:D\n"


def judge_bars(prompt: str, continuation: str) -> bool:
    output = prompt + continuation
    return bars_ok(prompt, parse(output), added_part(prompt, output))


def test_the_prompts_short_last_bar_before_a_double_repeat_is_the_prompts_own():
    # the prompt's part ends "D2::" (short against its pickup A); the continuation's bars are all full.
    # "::" holds no "|", so the judge took the short bar for the continuation's (Auld Reekie, seed 24)
    prompt = HEAD + "A|F/G/AA d2A|ded c2A|B/c/dB AFD|AFD D2::\nf/"
    continuation = "g/ ad' c'2a|bge ded|add daf|bag faf|fga aga|bag ede|fed dfa|edc d3:|\n"
    assert judge_bars(prompt, continuation)
    assert not judge_bars(prompt, continuation.replace("edc d3", "edc d2"))  # a short bar of its own counts
