"""Validity of continuations of tunes the model never saw, cut where a user might stop: anywhere.

benchmarks/validity.py prompts with held-out Nottingham tunes cut at a bar line. Here the prompts are
tunes from music21's corpus that were never trained on: every Essen folk song (left out of training, odd
meters, modes, L:1/16) and the held-out tenth of O'Neill's and Aird's tunebooks (``split_holdout`` as in
training). Each tune is cut at a random character between 20% and 80% of its body, so a prompt may end
mid-bar, mid-note, inside a tuplet or a chord symbol. One continuation each (``abcflax.complete``, seed = the
prompt's index), as many from each corpus. Verdicts, none of them abcflax's own checker:

  refused    ``complete`` raised an InputError (its message is tallied): a refusal is a failure;
  abc2midi   no more ``Error`` lines of any kind than the prompt alone gives;
  music21    music21 parses the whole tune;
  bars       every music21 measure from the one the prompt ends in to the last is as long as its meter;
  fields     the continuation adds no field (inline or on a line) and changes no M:, L: or K:;
  ends       the tune ends with a closing bar line (|], || or :|);
  valid      all five;
  tonic      (music, not validity) its last note is the key's tonic, or a letter of its tonic chord
             (K:none and highland pipes aside); and the characters a continuation writes;
  odd values (music) notes written with 3/4, 1/4, 5 or 7 units that the prompt never writes, per note.

    python benchmarks/validity_unseen.py --limit 60 [--candidates 8] [--model DIR] [--append]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import abcflax
from abcflax.tunebook import music21_corpus_files

from results import publish

ROOT = Path(__file__).resolve().parents[1]
FIELD_IN_MUSIC = re.compile(r"(?:^|\n)[A-Za-z]:|\[[A-Za-z]:")
NOTE_LENGTH = re.compile(r"(?:[A-Ga-gz][,']*|(?<!\|)\])(\d*/*\d*)")
ODD_LENGTHS = {"3/4", "/4", "//", "5", "7"}
BAR_LINE = re.compile(r"::|:?\|[\]|]?:?")
ABC2MIDI_ERROR = re.compile(r"^Error in line-char (\d+)-(\d+) : (.*)$", re.M)


def unseen_tunes() -> list[tuple[str, str]]:
    """(corpus, raw tune text): all of Essen, and O'Neill's and Aird's tunes in the training hold-out."""
    texts, _ = abcflax.load_corpus(["music21:oneills1850", "music21:airdsAirs"])
    held_out = set(abcflax.split_holdout(texts, 0.1)[1])
    tunes = []
    for corpus in ("essenFolksong", "oneills1850", "airdsAirs"):
        for path in music21_corpus_files(corpus):
            for tune in abcflax.read_tunebook(path.read_text(encoding="latin-1"), str(path))[0]:
                if corpus == "essenFolksong" or abcflax.normalize_tune(tune) in held_out:
                    tunes.append((corpus, tune.full_text))
    return tunes


def cut(text: str, rng: random.Random) -> str:
    """The header and a random 20-80% of the body, cut at any character."""
    header, _, body = text.partition("\nK:")
    key_line, _, body = body.partition("\n")
    return f"{header}\nK:{key_line}\n{body[: int(len(body) * rng.uniform(0.2, 0.8))]}"


def abc2midi_errors(text: str, folder: Path) -> Counter:
    """abc2midi's Error messages, counted (not placed: it reports a prompt's own error, an open tie or an
    undefined part, at a line end or the tune's end, which moves when the tune goes on)."""
    path = folder / "tune.abc"
    path.write_text(text)
    out = subprocess.run(["abc2midi", str(path), "-o", str(folder / "tune.mid")], capture_output=True, text=True,
                         timeout=60).stdout
    return Counter(message for _line, _char, message in ABC2MIDI_ERROR.findall(out))


# music21's ABC reader drops the note a ``H`` (fermata) is written on (``Hc2`` reads as nothing); the judge
# reads it as the standard's ``!fermata!``, so that a prompt's own fermata does not fail its bar lengths
_LETTER_FERMATA = re.compile(r'(?<![A-Za-z"!+])H(?=[_^=]*[A-Ga-gz])')


def parse(text: str):
    import music21

    head, k_line, body = text.partition("\nK:")
    first, newline, rest = body.partition("\n")
    text = head + k_line + first + newline + _LETTER_FERMATA.sub("!fermata!", rest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return music21.converter.parse(text, format="abc")
        except Exception:  # noqa: BLE001 - any music21 failure is a "no"
            return None


def measures(score) -> list:
    part = score.parts[0] if score.parts else score
    return list(part.getElementsByClass("Measure"))


def bars_ok(prompt: str, score, added: str = "") -> bool:
    """Measures from the one the prompt ends in onwards are full (the prompt's earlier bars are its own, and
    so is the one it ends in when it stops inside the ``:|`` that closes it: a short last bar against the
    tune's pickup, whose bar line the continuation ``added`` only finishes)."""
    last_bar_line = max(prompt.rfind("|") + 1, prompt.rfind("::") + 2)  # "::" holds no "|"
    closed_text = prompt[: max(last_bar_line, prompt.find("\nK:") + 1)] + "\n"
    closed = parse(closed_text)
    first = len(measures(closed)) if closed is not None else 0
    if not first:  # music21 makes no measures of a tune of one or two bars: count its bar lines instead
        body = re.sub(r'"[^"\n]*"', "", body_of(closed_text)).lstrip()
        body = re.sub(r"^(?:\|:|\|\||\|)", "", body)  # a bar line that opens the tune closes no bar
        first = len(BAR_LINE.findall(body))
    if prompt.rstrip(" \t").endswith(":") and re.match(r"\|", added):
        first += 1  # the prompt began the bar line that closes its last bar: that bar holds only its notes
    for measure in measures(score)[first:]:
        if abs(measure.duration.quarterLength - measure.barDuration.quarterLength) > 1e-6:
            return False
    return True


def body_of(text: str) -> str:
    return text.partition("\nK:")[2].partition("\n")[2]


def added_part(prompt: str, output: str) -> str:
    """What the continuation wrote: the output's body after the prompt's (the header may gain an explicit
    L:, a field the prompt left to its default)."""
    return body_of(output)[len(body_of(prompt)):]


def effective_fields(text: str) -> tuple:
    from abcflax.tunebook import default_unit_length

    header = text.partition("\nK:")[0] + "\nK:" + text.partition("\nK:")[2].partition("\n")[0]
    fields = dict(re.findall(r"^([MLK]):(.*)$", header, re.M))
    meter = fields.get("M", "").strip() or None
    unit = fields.get("L", "").strip() or default_unit_length(meter)
    return meter, unit, fields.get("K", "").strip()


def fields_ok(prompt: str, output: str) -> bool:
    return not FIELD_IN_MUSIC.search(added_part(prompt, output)) and effective_fields(output) == effective_fields(prompt)


def tonic_of(prompt: str) -> str | None:
    key = re.findall(r"^K:\s*([A-G][#b]?)", prompt, re.M)
    return key[-1] if key and not re.search(r"^K:\s*(none|HP|Hp)", prompt, re.M) else None


def ending(prompt: str, score) -> tuple[bool, bool] | None:
    """(last note on the tonic, last note's letter in the tonic chord); a chord counts by its first note."""
    tonic = tonic_of(prompt)
    notes = list(score.flatten().notes) if score is not None else []
    if tonic is None or not notes:
        return None
    last = notes[-1].pitches[0]
    steps = "CDEFGAB"
    return last.name == tonic[0] + tonic[1:].replace("b", "-"), (
        steps.index(last.step) - steps.index(tonic[0])) % 7 in (0, 2, 4)


def odd_values(prompt: str, output: str) -> tuple[int, int]:
    strip = lambda text: re.sub(r'"[^"\n]*"|![^!\n]*!', "", text)  # noqa: E731 - symbols and decorations
    in_prompt = set(NOTE_LENGTH.findall(strip(prompt)))
    written = NOTE_LENGTH.findall(strip(added_part(prompt, output)))
    return sum(1 for length in written if length in ODD_LENGTHS - in_prompt), len(written)


def judge(prompt: str, output: str, folder: Path) -> dict:
    score = parse(output)
    verdict = dict(abc2midi=not (abc2midi_errors(output, folder) - abc2midi_errors(prompt, folder)),
                   music21=score is not None, bars=score is not None and bars_ok(prompt, score, added_part(prompt, output)),
                   fields=fields_ok(prompt, output),
                   ends=output.rstrip().endswith(("|]", "||", ":|")))
    verdict["valid"] = all(verdict.values())
    verdict["ending"] = ending(prompt, score)
    verdict["chars"] = len(added_part(prompt, output))
    verdict["odd"], verdict["notes"] = odd_values(prompt, output)
    return verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0, help="chooses the tunes and the cuts")
    parser.add_argument("--append", action="store_true", help="append the figures to benchmarks/RESULTS.md")
    parser.add_argument("--candidates", type=int, default=8, help="draws per tune (abcflax's default)")
    parser.add_argument("--dump", type=Path, help="write each failing prompt (and output) to this folder")
    args = parser.parse_args()
    if shutil.which("abc2midi") is None:
        sys.exit("needs abc2midi on PATH")
    rng = random.Random(args.seed)
    by_corpus: dict[str, list[str]] = {}
    for corpus, text in unseen_tunes():
        by_corpus.setdefault(corpus, []).append(text)
    share = args.limit // len(by_corpus)  # as many from each: Essen alone has 25 times the others' tunes
    chosen = [(corpus, text) for corpus, texts in by_corpus.items()
              for text in rng.sample(texts, min(share, len(texts)))]
    model = abcflax.load_model(args.model)
    load = os.getloadavg()
    verdicts, refusals, sources = [], Counter(), Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for index, (corpus, text) in enumerate(chosen):
            prompt = cut(text, rng)
            sources[corpus] += 1
            try:
                output = abcflax.complete(prompt, model=model, seed=index, candidates=args.candidates)
            except abcflax.InputError as exc:
                refusals[re.sub(r"'[^']*'", "'...'", str(exc))[:90]] += 1
                verdicts.append(dict(refused=True))
                dump(args.dump, index, prompt, str(exc))
                continue
            verdicts.append(dict(refused=False, **judge(prompt, output, Path(tmp))))
            if not verdicts[-1]["valid"]:
                failed = [k for k in ("abc2midi", "music21", "bars", "fields", "ends") if not verdicts[-1][k]]
                dump(args.dump, index, prompt, f"failed: {failed}\n{output}")
    publish("Validity of continuations of unseen tunes cut anywhere (benchmarks/validity_unseen.py)",
            report(args, model, verdicts, refusals, sources, load), args.append)


def dump(folder: Path | None, index: int, prompt: str, outcome: str) -> None:
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:03d}.prompt.abc").write_text(prompt)
        (folder / f"{index:03d}.outcome.txt").write_text(outcome)


def report(args, model, verdicts, refusals, sources, load) -> list[str]:
    count = len(verdicts)
    answered = [v for v in verdicts if not v["refused"]]
    share = lambda key: sum(v.get(key) is True for v in answered) / count  # noqa: E731 - refusals count as no
    endings = [v["ending"] for v in answered if v["ending"] is not None]
    odd, notes = sum(v["odd"] for v in answered), sum(v["notes"] for v in answered)
    lines = [f"command: python benchmarks/validity_unseen.py --limit {args.limit} --seed {args.seed} "
             f"--candidates {args.candidates}"
             + (f" --model {args.model}" if args.model else ""),
             f"model: {model.path}",
             "prompts: " + ", ".join(f"{n} {c}" for c, n in sources.items()) + ", each cut at a random character",
             "", "| verdict | share of all prompts |", "|---|---|",
             f"| answered (not refused) | {len(answered) / count:.1%} ({len(answered)}/{count}) |"]
    lines += [f"| {key} | {share(key):.1%} |" for key in ("abc2midi", "music21", "bars", "fields", "ends", "valid")]
    lines += ["", f"- last note on the key's tonic: {sum(e[0] for e in endings)}/{len(endings)} continuations, "
              f"on a letter of its tonic chord: {sum(e[1] for e in endings)}/{len(endings)}",
              f"- characters written: {sum(v['chars'] for v in answered) / max(1, len(answered)):.0f} a continuation",
              f"- odd note values the prompt never writes: {odd} of {notes} notes"]
    lines += [f"- refused x{n}: {message}" for message, n in refusals.most_common()]
    lines.append(f"- load average: {load} (before) {os.getloadavg()} (after)")
    return lines


if __name__ == "__main__":
    main()
