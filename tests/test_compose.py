"""Batch composition: seeds files, prompts and titles, reproducibility, safe file names, the compose CLI."""

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import abcflax
from abcflax import composer
from abcflax.errors import InputError
from abcflax_cli.common import main_group

# the tiny model's vocabulary holds only TINY_CORPUS's characters: these seeds use nothing else
SEEDS = """% a seeds file: one-line seeds, a header over two lines, a partial tune
K:Ador
R:reel K:D
R:jig

M:3/4
K:D

X:7
T:Waltz 3
M:3/4
L:1/4
K:D
de|f2 e|d2 B|
"""
MAX = 200  # the smallest constrained continuation: keeps the tests fast


def run(args, input=None):
    return CliRunner().invoke(main_group, args, input=input, catch_exceptions=False)


def fields(seed):
    return dict(seed.fields)


# ---------------------------------------------------------------- seeds files (no model)

def test_seeds_file_formats_are_read_with_their_lines():
    seeds, problems = abcflax.parse_seeds(SEEDS, "s.txt")
    assert problems == []
    assert [s.line for s in seeds] == [2, 3, 4, 6, 9]
    assert [fields(s) for s in seeds[:4]] == [{"K": "Ador"}, {"R": "reel", "K": "D"}, {"R": "jig"},
                                              {"M": "3/4", "K": "D"}]
    kesh = seeds[4]
    assert kesh.tunebook and kesh.body == "de|f2 e|d2 B|" and fields(kesh)["T"] == "Waltz 3"
    assert [s.index for s in seeds] == [0, 1, 2, 3, 4]


def test_a_repeated_field_or_a_k_line_starts_a_new_seed():
    seeds, problems = abcflax.parse_seeds("R:reel\nR:jig\nM:6/8\nK:G\nK:D\nT:Morning Star R:reel K:D\n")
    assert problems == []
    assert [fields(s) for s in seeds] == [{"R": "reel"}, {"R": "jig", "M": "6/8", "K": "G"}, {"K": "D"},
                                          {"T": "Morning Star", "R": "reel", "K": "D"}]


@pytest.mark.parametrize("rhythm, meter", [("reel", "4/4"), ("jig", "6/8"), ("slip jig", "9/8"),
                                           ("waltz", "3/4"), ("hornpipe", "4/4"), ("polka", "2/4"),
                                           ("strathspey", "4/4"), ("air", "4/4")])
def test_one_line_seed_is_expanded_with_defaults_by_rhythm(rhythm, meter):
    seed = abcflax.parse_seeds(f"R:{rhythm}\n")[0][0]
    prompt = composer.seed_prompt(seed, composer.base_title(seed))
    assert prompt == f"X:1\nT:{rhythm[0].upper()}{rhythm[1:]} in G\nR:{rhythm}\nM:{meter}\nL:1/8\nK:G"


def test_seed_fields_win_over_defaults_and_titles_name_key_and_mode():
    seed = abcflax.parse_seeds("R:jig M:9/8 L:1/16 K:Ador\n")[0][0]
    assert composer.seed_prompt(seed, "x").split("\n")[3:] == ["M:9/8", "L:1/16", "K:Ador"]
    assert composer.base_title(seed) == "Jig in A dorian"
    assert composer.base_title(abcflax.parse_seeds("K:Em")[0][0]) == "Tune in E minor"
    assert composer.base_title(abcflax.parse_seeds("T:The Kesh K:G")[0][0]) == "The Kesh"


@pytest.mark.parametrize("line, why", [
    ("K:Hx", "key K:Hx is not understood"), ("K:", "no key"), ("M:99/1 K:D", "too long a bar"),
    ("M:7/0 K:D", "M:7/0"), ("M:6/8 M:3/4 K:D", "M: given twice"),
])
def test_a_bad_seed_is_named_with_its_line_and_the_others_are_kept(line, why):
    seeds, problems = abcflax.parse_seeds(f"K:G\n\n{line}\nR:reel\n", "s.txt")
    assert [fields(s) for s in seeds] == [{"K": "G"}, {"R": "reel"}]
    assert len(problems) == 1 and problems[0].startswith(f"s.txt:3: seed {line!r}: ") and why in problems[0]
    assert seeds[1].index == 2  # positions count the bad seed, so fixing it changes no other tune


def test_music_without_a_key_is_a_bad_seed():
    _, problems = abcflax.parse_seeds("X:1\nT:t\nGAB|\n", "s.txt")
    assert problems == ["s.txt:1: seed 'X:1 / T:t / GAB|': music before any K: (key) field"]


# ---------------------------------------------------------------- file names

def test_file_names_stay_inside_the_folder(tmp_path):
    titles = ["../../etc/passwd", "..", "/abs/path", "a\\b", "C:\\x"]
    for stem in composer.safe_file_names(titles):
        assert stem and "/" not in stem and "\\" not in stem and ".." not in stem and not stem.startswith(".")
        assert (tmp_path / f"{stem}.abc").resolve().parent == tmp_path.resolve()


def test_file_names_drop_control_characters_bound_length_and_are_unique():
    titles = ["Reel\x00in\x1fD\x7f\u200e", "x" * 500, "é" * 300, "Reel", "reel", "REEL", "", "   ", "NUL"]
    stems = composer.safe_file_names(titles)
    assert stems[0] == "Reel_in_D"
    assert all(len(s.encode("utf-8")) <= composer.MAX_NAME_BYTES + 4 for s in stems)
    assert stems[2].startswith("é") and stems[2].encode("utf-8").decode("utf-8")  # never split inside a character
    assert len({s.lower() for s in stems}) == len(stems)
    assert stems[3:6] == ["Reel", "reel-2", "REEL-3"]
    assert stems[6] == "tune-7" and stems[7] == "tune-8" and stems[8].lower() != "nul"


# ---------------------------------------------------------------- composing with the tiny model

def compose(seeds, **options):
    return list(abcflax.compose(seeds, model=options.pop("model"), max_chars=MAX, **options))


def test_every_seed_gives_n_numbered_titled_valid_tunes(tiny_model):
    tunes = compose(SEEDS, n=2, model=tiny_model, seed=1, batch_size=4)
    assert [t.number for t in tunes] == list(range(1, 11))
    assert [t.seed_index for t in tunes] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert tunes[2].title == "Reel in D no. 3" and tunes[9].title == "Waltz 3"
    for tune in tunes:
        header = tune.text.split("\n")
        assert header[0] == f"X:{tune.number}" and header[1] == f"T:{tune.title}"
        assert tune.valid and not abcflax.check_tune(tune.text) and tune.generated > 0
    assert tunes[8].text.startswith("X:9\nT:Waltz 3\nM:3/4\nL:1/4\nK:D\nde|f2 e|d2 B|")
    assert "M:6/8" in tunes[4].text and "K:D" in tunes[2].text


def test_same_seed_same_tunes_and_tune_k_is_the_same_alone(tiny_model):
    first = compose(SEEDS, n=2, model=tiny_model, seed=3, batch_size=8)
    again = compose(SEEDS, n=2, model=tiny_model, seed=3, batch_size=2)
    assert [t.text for t in first] == [t.text for t in again]
    plans = composer.plan_tunes(SEEDS, 2, model=tiny_model)
    alone = compose([plans[5]], model=tiny_model, seed=3, batch_size=1)
    assert alone[0].text == first[5].text
    other = compose(SEEDS, n=2, model=tiny_model, seed=4, batch_size=8)
    assert [t.text for t in other] != [t.text for t in first]


def test_a_bad_seed_changes_no_other_tune(tiny_model):
    good = compose(SEEDS, model=tiny_model, seed=2, batch_size=8)
    problems = []
    broken = SEEDS.replace("R:reel K:D", "R:reel K:Hx")
    tunes = compose(broken, model=tiny_model, seed=2, batch_size=8, source="s.txt", on_problem=problems.append)
    assert problems == ["s.txt:3: seed 'R:reel K:Hx': key K:Hx is not understood"]
    assert [t.seed_index for t in tunes] == [0, 2, 3, 4] and [t.number for t in tunes] == [1, 2, 3, 4]
    music = lambda text: text.split("\nK:", 1)[1]  # noqa: E731 - numbers (X:, generated T:) close the gap
    assert [music(t.text) for t in tunes] == [music(good[i].text) for i in (0, 2, 3, 4)]
    assert tunes[1].title == "Jig in G no. 2" and good[2].title == "Jig in G no. 3"


def test_a_tune_the_decoder_cannot_finish_is_reported_and_the_others_come_out_the_same(tiny_model, monkeypatch):
    from abcflax import sample

    good = compose(SEEDS, model=tiny_model, seed=2, batch_size=8)
    real_results = sample.Pending.results

    def stuck_on_the_jig(pending):  # a dead end, as the sampler reports one, for every jig in the pool
        stuck = sorted({pending.tune_of[i] for i, prompt in enumerate(pending.prompts) if "R:jig" in prompt})
        if stuck:
            raise sample.DeadEnd("constrained decoding found no valid character", stuck)
        return real_results(pending)

    monkeypatch.setattr(sample.Pending, "results", stuck_on_the_jig)
    problems = []
    tunes = compose(SEEDS, model=tiny_model, seed=2, batch_size=8, source="s.txt", on_problem=problems.append)
    assert problems == ["s.txt:4: seed 'R:jig': tune 3 (Jig in G no. 3): the constrained decoder cannot finish "
                        "it (try --no-constrain, or end the seed at a bar line)"]
    assert [t.number for t in tunes] == [1, 2, 4, 5]
    assert [t.text for t in tunes] == [good[i].text for i in (0, 1, 3, 4)]
    with pytest.raises(InputError, match="s.txt:4: seed 'R:jig': tune 3"):
        compose(SEEDS, model=tiny_model, seed=2, batch_size=8, source="s.txt")


def test_a_character_the_model_lacks_is_named_and_the_others_still_compose(tiny_model):
    problems = []
    tunes = compose("K:G\nR:caf\u00e9 K:D\nT:Caf\u00e9 \u266b R:jig\n", model=tiny_model, source="s.txt",
                    on_problem=problems.append)
    assert problems == ["s.txt:2:6: seed 'R:caf\u00e9 K:D': character '\u00e9' (U+00E9) is not in the model's "
                        "vocabulary"]
    assert [t.title for t in tunes] == ["Tune in G no. 1", "Caf\u00e9 \u266b"]  # titles keep every character
    assert tunes[1].text.startswith("X:2\nT:Caf\u00e9 \u266b\nR:jig\n")
    with pytest.raises(InputError, match="s.txt:2:6"):
        compose("K:G\nR:caf\u00e9 K:D\n", model=tiny_model, source="s.txt")


def test_auto_batch_size_is_a_bounded_power_of_two(tiny_model):
    for tunes in (1, 3, 17, 100_000):
        size = composer.auto_batch_size(tunes, tiny_model)
        assert size & (size - 1) == 0 and 1 <= size <= max(1, 2 ** (tunes - 1).bit_length()) and size <= 512


# ---------------------------------------------------------------- the CLI

def test_cli_writes_a_reproducible_tunebook(tiny_model_dir, tmp_path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(SEEDS)
    args = ["compose", str(seeds), "-n", "2", "--model", str(tiny_model_dir), "--max-chars", str(MAX), "--seed", "5"]
    first = run(args + ["-o", str(tmp_path / "a.abc")])
    second = run(args + ["-o", str(tmp_path / "b.abc"), "--batch-size", "2", "--quiet"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    assert (tmp_path / "a.abc").read_text() == (tmp_path / "b.abc").read_text()
    book = (tmp_path / "a.abc").read_text()
    assert [line for line in book.split("\n") if line.startswith("X:")] == [f"X:{i}" for i in range(1, 11)]
    assert "10 tunes, 10 valid" in first.stderr and "chars/s" in first.stderr and second.stderr == ""
    again = run(args + ["-o", str(tmp_path / "a.abc")])
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_cli_writes_into_a_device_without_force_and_refuses_a_folder(tiny_model_dir, tmp_path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("K:G\n")
    args = ["compose", str(seeds), "--model", str(tiny_model_dir), "--max-chars", str(MAX), "--quiet"]
    devnull = run(args + ["-o", os.devnull, "--format", "abc"])
    assert devnull.exit_code == 0, devnull.stderr  # nothing is replaced, so no --force is needed
    folder = run(args + ["-o", str(tmp_path), "--format", "abc", "--force"])
    assert folder.exit_code == 1
    assert folder.stderr.splitlines() == [f"abcflax: error: {tmp_path}: is a directory, not a file to write"]


def test_cli_bad_seed_exit_1_and_the_others_are_written(tiny_model_dir, tmp_path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("K:G\nM:99/1 K:D\nR:jig\n")
    result = run(["compose", str(seeds), "--model", str(tiny_model_dir), "--max-chars", str(MAX), "--quiet"])
    assert result.exit_code == 1
    assert f"abcflax: error: {seeds}:2: seed 'M:99/1 K:D': " in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.count("X:") == 2 and "T:Jig in G no. 2" in result.stdout


def test_cli_a_tune_the_decoder_cannot_finish_is_one_line_and_the_others_keep_their_files(
        tiny_model_dir, tmp_path, monkeypatch):
    from abcflax import sample

    real_results = sample.Pending.results

    def stuck_on_the_jig(pending):
        stuck = sorted({pending.tune_of[i] for i, prompt in enumerate(pending.prompts) if "R:jig" in prompt})
        if stuck:
            raise sample.DeadEnd("constrained decoding found no valid character", stuck)
        return real_results(pending)

    monkeypatch.setattr(sample.Pending, "results", stuck_on_the_jig)
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("T:First K:G\nT:Second R:jig K:D\nT:Third K:A\n")
    out = tmp_path / "tunes"
    result = run(["compose", str(seeds), "--model", str(tiny_model_dir), "--max-chars", str(MAX), "--quiet",
                  "--out-dir", str(out)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"abcflax: error: {seeds}:2: seed 'T:Second R:jig K:D': tune 2 (Second): "
                                          "the constrained decoder cannot finish it (try --no-constrain, or end "
                                          "the seed at a bar line)"]
    assert sorted(p.name for p in out.iterdir()) == ["First.abc", "Third.abc"]
    assert "T:Third" in (out / "Third.abc").read_text()


def test_cli_out_dir_one_safe_file_per_tune_and_format(tiny_model_dir, tmp_path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("T:../../etc/passwd K:G\nT:../../etc/passwd K:D\nK:G\n")
    out = tmp_path / "deep" / "out"
    args = ["compose", str(seeds), "--model", str(tiny_model_dir), "--max-chars", str(MAX), "--out-dir", str(out),
            "--format", "abc,mid", "--quiet"]
    result = run(args)
    assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["etc_passwd.abc", "etc_passwd.mid", "etc_passwd-2.abc", "etc_passwd-2.mid",
                            "Tune_in_G_no._3.abc", "Tune_in_G_no._3.mid"])
    assert [p for p in tmp_path.rglob("passwd*")] == []
    assert (out / "etc_passwd-2.abc").read_text().startswith("X:2\nT:../../etc/passwd\n")
    assert (out / "etc_passwd.mid").read_bytes().startswith(b"MThd")
    refused = run(args)
    assert refused.exit_code == 1 and "already exists (use --force" in refused.stderr
    assert run(args + ["--force"]).exit_code == 0


def test_cli_rejects_conflicting_outputs_and_unknown_formats(tiny_model_dir, tmp_path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("K:G\n")
    both = run(["compose", str(seeds), "-o", str(tmp_path / "x.abc"), "--out-dir", str(tmp_path / "d")])
    assert both.exit_code == 2 and "choose one of -o" in both.stderr
    several = run(["compose", str(seeds), "--format", "abc,mid"])
    assert several.exit_code == 2 and "--out-dir" in several.stderr
    unknown = run(["compose", str(seeds), "--out-dir", str(tmp_path / "d"), "--format", "abc,wav"])
    assert unknown.exit_code == 2 and "unknown output format 'wav'" in unknown.stderr
    assert not Path(tmp_path / "d").exists()


def test_cli_a_seeds_file_with_only_bad_seeds_is_its_error_lines_alone(tiny_model_dir, tmp_path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("M:99/1 K:D\n")
    result = run(["compose", str(seeds), "--model", str(tiny_model_dir), "--max-chars", str(MAX)])
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("abcflax: error:")


def test_a_seed_in_another_key_is_composed_in_g_and_written_in_its_own():
    # the bundled model ends tunes best on G and D: a seed in F is sampled a tone up, written back in F
    from abcflax.transposition import transpose

    plan = composer.plan_tunes("M:6/8 K:F\n")[0]
    assert plan.fifths == 2 and plan.prompt.endswith("K:G") and plan.shown.endswith("K:F")
    tune = next(abcflax.compose("M:6/8 K:F\n", seed=3, candidates=1))
    assert "\nK:F\n" in tune.text and tune.valid
    assert transpose(transpose(tune.text, 2), -2) == tune.text  # written plainly in F: it moves there and back
    tune_seed = composer.plan_tunes("X:1\nT:Seed\nM:4/4\nL:1/8\nK:Bb\nBcde f2 d2|\n")[0]
    assert tune_seed.fifths == 3 and "K:G\nGABc d2 B2|" in tune_seed.prompt and "K:Bb" in tune_seed.shown
