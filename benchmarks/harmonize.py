"""Harmonize held-out Nottingham tunes with their chords removed; compare with the original chords.

Held-out tunes: ``abcflax.training.split_holdout(texts, 0.1)[1]`` over the normalized Nottingham texts (the
tunes the bundled model never trained on). They are split once more by position: even ones are the
*validation* subset (for tuning the search), odd ones the *test* subset (for reporting).

Accuracy: at every beat (dotted quarter in 6/8 and 9/8, else 1/denominator) after the original's first
chord, the chord in effect (the last symbol at or before the beat) is compared with the original's on
root + quality class (major, minor, dominant 7th, diminished, augmented, other; see
``abcflax.harmonizer.parse_chord``) and on root alone. Slash basses are ignored.

Yeh et al. 2021 ("Automatic melody harmonization with triad chords: a comparative study") metrics, per tune
and then averaged over tunes, for the model, the rules baseline and the original chords:
  * CHE, chord histogram entropy: -sum p log p (natural log) over the histogram of root+quality labels of
    the chord in effect at each beat (beat sampling makes the harmonic rhythms of the three comparable).
  * CC, chord coverage: the number of distinct root+quality labels in those beats.
  * CTD, chord tonal distance: mean Euclidean distance between the 6-D tonal centroids (Harte et al. 2006;
    radii 1, 1, 0.5; chroma L1-normalized) of consecutive chords, over the sequence of chord changes
    (consecutive beats with the same label collapsed).
  * CTnCTR: (n_c + n_p) / (n_c + n_n) over melody notes under a chord: n_c chord tones, n_n non-chord
    tones, n_p the non-chord tones within 2 semitones of the next melody note. Chord tones include 7ths.
  * PCS: on a 16th-note grid, each sounding melody pitch against each chord tone: +1 for unison, thirds,
    fifth, sixths (intervals 0, 3, 4, 7, 8, 9 mod 12), 0 for the fourth (5), -1 otherwise; the mean.
  * MCTD: the tonal distance between each melody note (one-hot chroma) and its chord, weighted by the
    note's duration.
For an inline chord [DF] the top pitch is the melody note.

Speed: the model's time per tune, as a ratio to ``abcflax.complete`` asked to write as many bars as the
tune has after its first two (prompt: the chord-free tune cut after its second bar line).

    python benchmarks/harmonize.py --model runs/default --subset test --limit 30 --append

``--transpose F`` moves every held-out tune, melody and reference chords, by F fifths first (the tunes in
other keys than Nottingham's G and D; a tune that cannot be moved plainly is left out).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
NOTTINGHAM = PROJECT.parent / "shared" / "data" / "nottingham"
CONSONANCE = {0: 1, 3: 1, 4: 1, 7: 1, 8: 1, 9: 1, 5: 0}
SIXTEENTH = Fraction(1, 16)


def held_out(subset: str) -> list[str]:
    import abcflax

    texts, _ = abcflax.load_corpus([str(NOTTINGHAM)])
    held = abcflax.split_holdout(texts, 0.1)[1]
    return held[0::2] if subset == "valid" else held[1::2]


# ---- timelines from a harmonized tune


@dataclass
class Timeline:
    chords: list  # (onset, Chord) in onset order
    notes: list  # (onset, duration, top pitch)
    beats: list  # beat onsets


def timeline(text: str) -> Timeline:
    from abcflax.abc_check import analyze_tune
    from abcflax.harmonizer import beat_length, first_voice, parse_chord

    analysis = analyze_tune(text)
    voice = first_voice(analysis)
    events = [e for e in analysis.events if e.voice == voice]
    chords = [(e.onset, c) for e in events if e.kind == "chord_symbol" for c in [parse_chord(e.text)] if c]
    notes = [(e.onset, e.duration, max(e.pitches)) for e in events if e.kind in ("note", "chord") and e.pitches
             and e.duration > 0]
    beats: list[Fraction] = []
    bars: dict[int, list] = {}
    for e in events:
        if e.kind in ("note", "rest", "chord"):
            bars.setdefault(e.bar, []).append(e)
    for bar_events in bars.values():
        start = bar_events[0].onset
        end = max(e.onset + e.duration for e in bar_events)
        beat = beat_length(analysis.meter or Fraction(1), analysis.meter_text)
        t = start
        while t < end:
            beats.append(t)
            t += beat
    return Timeline(chords, notes, beats)


def chord_at(chords: list, t: Fraction):
    found = None
    for onset, chord in chords:
        if onset > t:
            break
        found = chord
    return found


def label(chord) -> tuple[int, str]:
    return chord.root, chord.quality


# ---- metrics


def tonal_centroid(chroma: np.ndarray) -> np.ndarray:
    l = np.arange(12)
    phi = np.stack([np.sin(l * 7 * np.pi / 6), np.cos(l * 7 * np.pi / 6), np.sin(l * 3 * np.pi / 2),
                    np.cos(l * 3 * np.pi / 2), 0.5 * np.sin(l * 2 * np.pi / 3), 0.5 * np.cos(l * 2 * np.pi / 3)])
    return phi @ (chroma / max(chroma.sum(), 1e-9))


def chroma_of(pcs) -> np.ndarray:
    v = np.zeros(12)
    v[list(pcs)] = 1
    return v


def metrics(tl: Timeline) -> dict[str, float]:
    beat_chords = [c for c in (chord_at(tl.chords, b) for b in tl.beats) if c is not None]
    out: dict[str, float] = {}
    if beat_chords:
        counts = np.array(list(_count(label(c) for c in beat_chords).values()), float)
        p = counts / counts.sum()
        out["CHE"] = float(-(p * np.log(p)).sum())
        out["CC"] = float(len(counts))
        changes = [beat_chords[0]]
        for c in beat_chords[1:]:
            if label(c) != label(changes[-1]):
                changes.append(c)
        if len(changes) > 1:
            out["CTD"] = float(np.mean([np.linalg.norm(tonal_centroid(chroma_of(a.tones))
                                                       - tonal_centroid(chroma_of(b.tones)))
                                        for a, b in zip(changes, changes[1:])]))
    n_c = n_n = n_p = 0
    pcs_scores, td_sum, td_weight = [], 0.0, 0.0
    for i, (onset, duration, pitch) in enumerate(tl.notes):
        chord = chord_at(tl.chords, onset)
        if chord is None:
            continue
        if pitch % 12 in chord.tones:
            n_c += 1
        else:
            n_n += 1
            if i + 1 < len(tl.notes) and abs(tl.notes[i + 1][2] - pitch) <= 2:
                n_p += 1
        t = onset
        while t < onset + duration:
            now = chord_at(tl.chords, t)
            pcs_scores.append(np.mean([CONSONANCE.get((pitch - tone) % 12, -1) for tone in now.tones]))
            t += SIXTEENTH
        td = np.linalg.norm(tonal_centroid(chroma_of([pitch % 12])) - tonal_centroid(chroma_of(chord.tones)))
        td_sum += float(duration) * td
        td_weight += float(duration)
    if n_c + n_n:
        out["CTnCTR"] = (n_c + n_p) / (n_c + n_n)
    if pcs_scores:
        out["PCS"] = float(np.mean(pcs_scores))
    if td_weight:
        out["MCTD"] = td_sum / td_weight
    return out


def _count(items) -> dict:
    counts: dict = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def accuracy(original: Timeline, guess: Timeline) -> tuple[int, int, int]:
    """(beats compared, root+quality matches, root matches)."""
    n = full = root = 0
    for b in original.beats:
        truth, got = chord_at(original.chords, b), chord_at(guess.chords, b)
        if truth is None:
            continue
        n += 1
        if got is not None:
            full += label(truth) == label(got)
            root += truth.root == got.root
    return n, full, root


# ---- the run


def complete_time(melody: str, model) -> float:
    import abcflax
    from abcflax.abc_check import analyze_tune

    analysis = analyze_tune(melody)
    barlines = [e for e in analysis.events if e.kind == "barline"]
    cut = barlines[1].end if len(barlines) > 2 else len(melody)
    bars = max(1, len([b for b in analysis.bars if not b.voice]) - 2)
    start = time.perf_counter()
    abcflax.complete(melody[:cut] + "\n", model=model, bars=bars, seed=0, candidates=1)
    return time.perf_counter() - start


def run(args) -> dict:
    import abcflax
    from abcflax.harmonizer import strip_chords

    from abcflax import checkpoint
    from abcflax.loading import model_from_checkpoint

    ckpt = checkpoint.load(args.model)  # read once: the training run rewrites it while we measure
    model = model_from_checkpoint(ckpt, args.model)
    reverse = None if args.reverse_model == "none" else args.reverse_model
    if reverse == "auto":  # load it here too: the companion of a training run's checkpoint may be rewritten
        from abcflax.loading import reverse_companion

        reverse = reverse_companion(model)
    args.reverse_used = reverse.path if reverse is not None else "none"
    tunes = held_out(args.subset)[:args.limit]
    if args.transpose:  # the same tunes in other keys (those that cannot be moved plainly are left out)
        from abcflax.errors import InputError
        from abcflax.transposition import transpose

        moved = []
        for tune in tunes:
            try:
                moved.append(transpose(tune, args.transpose))
            except InputError:
                pass
        tunes = moved
    totals = {"model": [0, 0, 0], "rules": [0, 0, 0]}
    per_metric: dict[str, dict[str, list]] = {k: {} for k in ("model", "rules", "original")}
    times, ratios = [], []
    abcflax.harmonize(strip_chords(tunes[0]), model=model, beam=args.beam, change_penalty=args.change_penalty,
                                     chord_weight=args.chord_weight, fit_weight=args.fit_weight,
                                     candidates=args.candidates, reverse_model=reverse,
                                     reverse_weight=args.reverse_weight)
    if args.timing:
        complete_time(strip_chords(tunes[0]), model)  # both warm (compiled) before anything is timed
    for i, tune in enumerate(tunes):
        melody = strip_chords(tune)
        start = time.perf_counter()
        guessed = abcflax.harmonize(melody, model=model, beam=args.beam, change_penalty=args.change_penalty,
                                     chord_weight=args.chord_weight, fit_weight=args.fit_weight,
                                     candidates=args.candidates, reverse_model=reverse,
                                     reverse_weight=args.reverse_weight)
        spent = time.perf_counter() - start
        times.append(spent)
        if args.timing:
            ratios.append(spent / complete_time(melody, model))
        ruled = abcflax.harmonize(melody, method="rules")
        lines = {"original": timeline(tune), "model": timeline(guessed), "rules": timeline(ruled)}
        for name in ("model", "rules"):
            for k, v in enumerate(accuracy(lines["original"], lines[name])):
                totals[name][k] += v
        for name, tl in lines.items():
            for metric, value in metrics(tl).items():
                per_metric[name].setdefault(metric, []).append(value)
        print(f"\r{i + 1}/{len(tunes)} tunes", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return {"step": ckpt.step, "tunes": len(tunes), "totals": totals, "metrics": per_metric, "times": times,
            "ratios": ratios}


def report(args, result: dict) -> str:
    step = result["step"]
    lines = [f"### harmonize — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, model {args.model} (step {step}),"
             f" {result['tunes']} held-out Nottingham tunes ({args.subset} subset), beam {args.beam}, "
             f"change penalty {args.change_penalty}, chord weight {args.chord_weight}, fit weight {args.fit_weight}, "
             f"candidates {args.candidates}, reverse model {args.reverse_used} (weight {args.reverse_weight})",
             "", f"`{' '.join(shlex.quote(a) for a in [sys.executable, *sys.argv])}`", "",
             "| method | beat acc. root+quality | beat acc. root | CHE | CC | CTD | CTnCTR | PCS | MCTD |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in ("model", "rules", "original"):
        if name in result["totals"]:
            n, full, root = result["totals"][name]
            acc = f"{100 * full / max(n, 1):.1f}% | {100 * root / max(n, 1):.1f}%"
        else:
            acc = "— | —"
        m = result["metrics"][name]
        cells = [f"{statistics.mean(m[k]):.3f}" if m.get(k) else "—" for k in
                 ("CHE", "CC", "CTD", "CTnCTR", "PCS", "MCTD")]
        lines.append(f"| {name} | {acc} | {' | '.join(cells)} |")
    times = result["times"]
    lines.append("")
    lines.append(f"Model time per tune: mean {statistics.mean(times):.2f} s, max {max(times):.2f} s"
                 + (f"; ratio to complete() of the same length: median {statistics.median(result['ratios']):.2f}"
                    f", mean {statistics.mean(result['ratios']):.2f}" if result["ratios"] else "")
                 + f". Load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores, shared).")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model folder or checkpoint (default: the bundled model)")
    parser.add_argument("--subset", choices=["valid", "test"], default="test")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--change-penalty", type=float, default=0.0)
    parser.add_argument("--candidates", type=int, default=None, help="chords tried per span (default: the library's)")
    parser.add_argument("--chord-weight", type=float, default=None, help="(default: the library's)")
    parser.add_argument("--fit-weight", type=float, default=None, help="melody-fit prior (default: the library's)")
    parser.add_argument("--reverse-model", default="auto",
                        help="right-to-left model that refines the chords: auto (beside the model), none, or a path")
    parser.add_argument("--reverse-weight", type=float, default=None, help="(default: the library's)")
    parser.add_argument("--no-timing", dest="timing", action="store_false", help="Skip the complete() timing.")
    parser.add_argument("--transpose", type=int, default=0,
                        help="move every tune (melody and reference chords) by this many fifths first")
    parser.add_argument("--append", action="store_true", help="Append the figures to benchmarks/RESULTS.md.")
    args = parser.parse_args()
    from abcflax.harmonizer import DEFAULT_CHORD_WEIGHT, DEFAULT_FIT_WEIGHT, DEFAULT_REVERSE_WEIGHT, MAX_CANDIDATES
    from abcflax.loading import default_model_path

    if args.model is None:
        args.model = str(default_model_path())
    if args.candidates is None:
        args.candidates = MAX_CANDIDATES

    if args.fit_weight is None:
        args.fit_weight = DEFAULT_FIT_WEIGHT
    if args.chord_weight is None:
        args.chord_weight = DEFAULT_CHORD_WEIGHT
    if args.reverse_weight is None:
        args.reverse_weight = DEFAULT_REVERSE_WEIGHT
    text = report(args, run(args))
    print(text)
    if args.append:
        with open(PROJECT / "benchmarks" / "RESULTS.md", "a", encoding="utf-8") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
