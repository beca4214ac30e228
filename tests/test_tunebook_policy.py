"""The tunebook policy (README: "a typo in tune 7 of 40 does not cost the rest") in every command, and `check`
agreeing with the other commands on what it refuses (same message, same line:column).

Each test here failed before the fix it names: harmonize and export wrote nothing for a book with one bad
tune, evaluate refused a whole book for a title's 'é' and did not read '-', check passed L:3/8 and Q:fast!!
(which the others refuse) and refused "N.C." (which the others take).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import abcflax
from abcflax_cli.common import main_group

GOOD_1 = "X:1\nT:Good One\nM:4/4\nL:1/8\nK:G\n|:GABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA:|\n"
BAD_2 = "X:2\nT:Smart Quotes\nM:4/4\nL:1/8\nK:G\n\u201cG\u201dGABc dedB|dedB dedB|\n"  # its music is line 13
GOOD_3 = "X:3\nT:Good Three\nM:4/4\nL:1/8\nK:G\n|:dedB GABc|c2ec B2dB:|\n"
BOOK = GOOD_1 + "\n" + BAD_2 + "\n" + GOOD_3
BAD_AT = ":13:1: "


def invoke(*args: str, stdin: str | bytes | None = None):
    return CliRunner().invoke(main_group, list(args), input=stdin)


def errors(result) -> list[str]:
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything and "internal error" not in everything, everything
    return [line for line in result.stderr.splitlines() if line.startswith("abcflax: error: ")]


@pytest.fixture
def book(tmp_path):
    path = tmp_path / "book.abc"
    path.write_text(BOOK)
    return path


# ---- 1. harmonize and export write every good tune of a book with a bad one --------------------------------

@pytest.mark.parametrize("args", [("harmonize", "--method", "rules"), ("export",)], ids=["harmonize", "export"])
def test_abc_output_holds_the_good_tunes_and_one_error_names_the_bad(book, tmp_path, args):
    out = tmp_path / "out.abc"
    result = invoke(*args, str(book), "-o", str(out))
    assert result.exit_code == 1
    assert errors(result) == [f"abcflax: error: {book}{BAD_AT}unexpected character '\u201c'"]
    written = out.read_text()
    assert "X:1" in written and "X:3" in written and "X:2" not in written and "\u201c" not in written
    assert "\n\n\n" not in written  # the bad tune leaves no gap: one blank line between the others
    assert abcflax.check_text(written) == []


@pytest.mark.parametrize("suffix", [".musicxml", ".mid"])
def test_export_writes_a_file_for_each_good_tune_named_as_in_the_whole_book(book, tmp_path, suffix):
    out = tmp_path / f"e{suffix}"
    result = invoke("export", str(book), "-o", str(out))
    assert result.exit_code == 1 and len(errors(result)) == 1 and BAD_AT in errors(result)[0]
    assert sorted(p.name for p in tmp_path.glob(f"e*{suffix}")) == [f"e-1{suffix}", f"e-3{suffix}"]


def test_export_names_stay_those_of_the_whole_book(tmp_path):
    """Repeated X: numbers: files are numbered by place in the book, the bad tune's place kept; and a book of
    two tunes, one bad, still gives OUT-<X> files, not OUT itself."""
    repeated = tmp_path / "repeated.abc"
    repeated.write_text(GOOD_1 + "\n" + BAD_2.replace("X:2", "X:1") + "\n" + GOOD_3.replace("X:3", "X:1"))
    assert invoke("export", str(repeated), "-o", str(tmp_path / "r.mid")).exit_code == 1
    assert sorted(p.name for p in tmp_path.glob("r*.mid")) == ["r-1.mid", "r-3.mid"]
    pair = tmp_path / "pair.abc"
    pair.write_text(BAD_2 + "\n" + GOOD_3)
    assert invoke("export", str(pair), "-o", str(tmp_path / "p.mid")).exit_code == 1
    assert [p.name for p in tmp_path.glob("p*.mid")] == ["p-3.mid"]


def test_export_refuses_an_existing_file_before_writing_any(book, tmp_path):
    (tmp_path / "e-3.musicxml").write_text("keep")
    result = invoke("export", str(book), "-o", str(tmp_path / "e.musicxml"))
    assert result.exit_code == 1 and errors(result) == [
        f"abcflax: error: {tmp_path / 'e-3.musicxml'}: already exists (use --force to overwrite)"]
    assert [p.name for p in tmp_path.glob("e*.musicxml")] == ["e-3.musicxml"]


def test_export_repair_still_writes_the_tunes_it_cannot_repair_around(tmp_path):
    source = tmp_path / "book.abc"
    broken = "X:2\nT:Broken\nM:4/4\nL:1/8\nK:G\nGABc dBG= B|dedB dedB|\n"  # a stray '=': repaired
    unfixable = "X:4\nT:No key\nM:4/4\nL:9/0\nK:G\nGABc dedB|\n"  # a header problem: not a stray character
    source.write_text(GOOD_1 + "\n" + broken + "\n" + unfixable + "\n" + GOOD_3)
    result = invoke("export", str(source), "-o", str(tmp_path / "x.abc"), "--repair")
    assert result.exit_code == 1 and len(errors(result)) == 1 and f"{source}:18:1: unit length" in errors(result)[0]
    assert f"{source}:13:9: removed '='" in result.stderr
    written = (tmp_path / "x.abc").read_text()
    assert [line for line in written.split("\n") if line.startswith("X:")] == ["X:1", "X:2", "X:3"]


def test_an_unreadable_tune_is_reported_and_left_out(tmp_path):
    source = tmp_path / "book.abc"
    source.write_text(GOOD_1 + "\nX:2\nT:No key line\nGABc|\n\n" + GOOD_3)
    result = invoke("harmonize", str(source), "--method", "rules")
    assert result.exit_code == 1
    assert errors(result) == [f"abcflax: error: {source}:8: tune has no K: (key) field in its header"]
    assert "X:2" not in result.stdout and result.stdout.count("X:") == 2


def test_continue_follows_the_same_policy(book, tmp_path, tiny_model_dir):
    out = tmp_path / "c.abc"
    result = invoke("continue", str(book), "-o", str(out), "--candidates", "1", "--model", str(tiny_model_dir),
                    "--max-chars", "300", "--quiet")
    assert result.exit_code == 1 and len(errors(result)) == 1 and BAD_AT in errors(result)[0]
    assert out.read_text().count("X:") == 2


def test_harmonize_tunebook_returns_the_good_tunes_and_the_problems():
    text, problems = abcflax.harmonize_tunebook(BOOK, method="rules", source="book.abc")
    assert problems == ["book.abc:13:1: unexpected character '\u201c'"]
    assert text.count("X:") == 2 and '"G"' in text
    with pytest.raises(abcflax.InputError, match="13:1"):
        abcflax.harmonize(BOOK, method="rules", source="book.abc")  # the one-tune API still refuses


# ---- 2 and 3. evaluate: unknown title characters left out, the policy, and '-' -------------------------------

TITLED = "X:1\nT:{title}\nM:4/4\nL:1/8\nK:G\n|:GABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA:|\n"


@pytest.mark.parametrize("title, encoding", [("Caf\u00e9 na Sp\u00e9ire", "latin-1"),
                                             ("Caf\u00e9 na Sp\u00e9ire", "utf-8"), ("Ce\u00f3l", "utf-8"),
                                             ("Reel \u266a", "utf-8")])
def test_evaluate_leaves_unknown_title_characters_out(tmp_path, tiny_model_dir, title, encoding):
    source = tmp_path / "titled.abc"
    source.write_bytes(TITLED.format(title=title).encode(encoding))
    known = set(abcflax.load_model(tiny_model_dir).vocab.chars)
    plain = tmp_path / "plain.abc"  # the tune as the model reads it: the title without what it does not know
    plain.write_text(TITLED.format(title="".join(ch for ch in title if ch in known)))
    result = invoke("evaluate", str(source), "--model", str(tiny_model_dir))
    assert result.exit_code == 0 and errors(result) == []
    assert result.stdout == invoke("evaluate", str(plain), "--model", str(tiny_model_dir)).stdout
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("abcflax: warning: ") and "left out" in warning
    assert invoke("evaluate", str(source), "--model", str(tiny_model_dir), "--quiet").stderr == ""


def test_evaluate_scores_the_good_tunes_and_names_the_bad(book, tiny_model_dir):
    result = invoke("evaluate", str(book), "--model", str(tiny_model_dir))
    assert result.exit_code == 1
    assert errors(result) == [f"abcflax: error: {book}{BAD_AT}unexpected character '\u201c'"]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("bpc=") and last.endswith(" tunes=2")


def test_evaluate_names_a_music_character_the_model_lacks_as_continue_does(tmp_path, tiny_model_dir):
    source = tmp_path / "flat.abc"  # the tiny model never saw a flat
    source.write_text(GOOD_1 + "\n" + GOOD_3.replace("|:dedB", "|:de_dB"))
    evaluated = invoke("evaluate", str(source), "--model", str(tiny_model_dir))
    continued = invoke("continue", str(source), "--model", str(tiny_model_dir), "--candidates", "1",
                       "--max-chars", "300", "--quiet")
    expected = f"abcflax: error: {source}:13:5: character '_' (U+005F) is not in the model's vocabulary"
    assert errors(evaluated) == errors(continued) == [expected]
    assert evaluated.exit_code == 1 and evaluated.stdout.strip().endswith(" tunes=1")


def test_evaluate_reads_stdin(tmp_path, tiny_model_dir):
    good = tmp_path / "good.abc"
    good.write_text(GOOD_1)
    from_file = invoke("evaluate", str(good), "--model", str(tiny_model_dir))
    from_stdin = invoke("evaluate", "-", "--model", str(tiny_model_dir), stdin=GOOD_1)
    assert from_stdin.exit_code == 0 and from_stdin.stdout == from_file.stdout
    bad = invoke("evaluate", "-", "--model", str(tiny_model_dir), stdin=BOOK)
    assert bad.exit_code == 1 and errors(bad) == [f"abcflax: error: <stdin>{BAD_AT}unexpected character '\u201c'"]
    twice = invoke("evaluate", "-", "-", "--model", str(tiny_model_dir), stdin=GOOD_1)
    assert twice.exit_code == 2 and "more than once" in twice.stderr


def test_evaluate_with_stdin_closed_is_one_line(tmp_path, tiny_model_dir):
    done = subprocess.run([sys.executable, "-m", "abcflax_cli.main", "evaluate", "-", "--model", str(tiny_model_dir)],
                          preexec_fn=lambda: os.close(0), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=120, env={**os.environ, "ABCFLAX_PLUGINS": ""})
    assert done.returncode == 1 and done.stderr.splitlines() == ["abcflax: error: cannot read stdin: it is closed"]


# ---- 4. check refuses exactly what the other commands refuse, with the same line:column ----------------------

REFUSED = {  # header or body line -> (line of the problem, message start)
    "unit_3_8": ("M:4/4\nL:3/8\nK:G\nGA|\n", "4:1: unit length L:3/8 is not 1/n"),
    "tempo_words": ("M:4/4\nL:1/8\nQ:fast!!\nK:G\nGABc dedB|\n", "5:1: tempo Q:fast!! is not understood"),
    "tempo_inline": ("M:4/4\nL:1/8\nK:G\nGABc [Q:late]dedB|\n", "6:6: tempo Q:late is not understood"),
    "tempo_open_quote": ('M:4/4\nL:1/8\nQ:"Allegro 1/4=120\nK:G\nGABc dedB|\n', '5:1: tempo Q:"Allegro 1/4=120 has'),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_check_and_the_others_refuse_alike(tmp_path, tiny_model_dir, case):
    body, where = REFUSED[case]
    source = tmp_path / "t.abc"
    source.write_text("X:1\nT:t\n" + body)
    check = invoke("check", str(source))
    assert check.exit_code == 1 and check.stdout.startswith(f"{source}:{where}")
    expected = f"abcflax: error: {check.stdout.splitlines()[0]}"
    for args in (["harmonize", "--method", "rules"], ["export", "-o", str(tmp_path / "t.musicxml")],
                 ["continue", "--model", str(tiny_model_dir), "--candidates", "1"],
                 ["evaluate", "--model", str(tiny_model_dir)]):
        result = invoke(args[0], str(source), *args[1:])
        assert result.exit_code == 1 and errors(result) == [expected], (args[0], result.stderr)


def test_a_header_problem_below_a_file_header_is_named_alike(tmp_path, tiny_model_dir):
    """The file header's M: and L: are written into each tune's header before K:, below its own Q: line:
    continue and harmonize named the Q: line 2 lines too early (it was line 6; they said 4)."""
    source = tmp_path / "book.abc"
    source.write_text("M:4/4\nL:1/8\n\nX:1\nT:t\nQ:fast\nK:G\nGABc dedB|\n\n" + GOOD_3)
    check = invoke("check", str(source))
    assert check.stdout.startswith(f"{source}:6:1: tempo Q:fast")
    expected = f"abcflax: error: {check.stdout.splitlines()[0]}"
    for args in (["harmonize", "--method", "rules"], ["export", "-o", str(tmp_path / "t.abc")],
                 ["continue", "--model", str(tiny_model_dir), "--candidates", "1", "--max-chars", "300"],
                 ["evaluate", "--model", str(tiny_model_dir)]):
        result = invoke(args[0], str(source), *args[1:])
        assert result.exit_code == 1 and errors(result) == [expected], (args[0], result.stderr)


ACCEPTED = {
    "whole_note_unit": "M:4/4\nL:1\nK:G\nG|A/A/|B|\n",  # ABC 2.1: "L:1 (whole note) - or equivalently L:1/1"
    "no_chord": 'M:4/4\nL:1/8\nK:G\n"N.C."GABc "G"dedB|"NC"dedB dedB|\n',
    "tempo_text": 'M:4/4\nL:1/8\nQ:"Allegro" 1/4=120\nK:G\nGABc [Q:3/8=50 "Lento"]dedB|[Q:"Adagio"]dedB dedB|\n',
    "tempo_old": "M:4/4\nL:1/8\nQ:120\nK:G\nGABc [Q:C=90]dedB|dedB dedB|\n",
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_check_and_the_others_accept_alike(tmp_path, tiny_model_dir, case):
    source = tmp_path / "t.abc"
    source.write_text("X:1\nT:t\n" + ACCEPTED[case])
    assert invoke("check", str(source)).exit_code == 0
    for args in (["harmonize", "--method", "rules"], ["export", "-o", str(tmp_path / f"{case}.musicxml")],
                 ["export", "-o", str(tmp_path / f"{case}.mid")],
                 ["continue", "--model", str(tiny_model_dir), "--candidates", "1", "--max-chars", "300"]):
        result = invoke(args[0], str(source), *args[1:])
        assert result.exit_code == 0 and errors(result) == [], (args[0], result.stderr)


def test_whole_note_unit_is_written_as_the_tools_read_it():
    """music21 ("no quarter length associated with this metadata: 1") and abc2midi ("Missing /") read only
    L:1/1, which ABC 2.1 calls the same."""
    from abcflax.tunebook import with_explicit_defaults

    assert with_explicit_defaults("X:1\nL:1\nK:G\nG|[L:1 ]A|\nL: 1 % whole\nB|") == \
        "X:1\nL:1/1\nK:G\nG|[L:1/1 ]A|\nL: 1/1 % whole\nB|"


def test_harmonize_replaces_or_keeps_a_no_chord_mark():
    tune = 'X:1\nT:t\nM:4/4\nL:1/8\nK:G\n"N.C."GABc dedB|"G"dedB dedB|\n'
    replaced = abcflax.harmonize(tune, method="rules", per="bar")
    assert "N.C." not in replaced and replaced.count('"') == 4  # a chord for each bar, no "G""N.C."
    kept = abcflax.harmonize(tune, method="rules", per="bar", keep_existing=True)
    assert kept == tune  # both bars have their harmony already: "N.C." is one


def test_a_continuation_does_not_put_a_chord_right_after_no_chord():
    from abcflax.continuation import PromptView, _rejoin

    prompt = 'X:1\nT:t\nM:4/4\nL:1/8\nK:G\n"G"GABc "D"dedB|"N.C."'
    view = 'X:1\nT:t\nM:4/4\nL:1/8\nK:G\n"G"GABc "D"dedB|'  # the model never reads "N.C."
    assert _rejoin(prompt, PromptView(view, "", ""), view + '"A7"cBAB "D"c4|') == prompt + 'cBAB "D"c4|'
    assert _rejoin(prompt + " ", PromptView(view, "", ""), view + ' "A7"cBAB|') == prompt + "  cBAB|"
