"""Batch composition: a file of seeds (keys, rhythms, meters, tune openings) becomes numbered, titled tunes.

Seeds file format (``parse_seeds``):

* Lines starting with ``%`` are comments; comments and blank lines are ignored, and a blank line ends a seed.
* A tune starting with ``X:`` is one seed, up to the next ``X:`` or blank line: its header and any opening
  bars after ``K:`` are kept and continued (its ``X:`` number is replaced).
* Without ``X:``, consecutive field lines make one seed (``M:6/8`` then ``K:G``) until the line holding
  ``K:`` and the music lines right after it. A field line starts a new seed after a ``K:``, after music, or
  when it repeats a field the seed already has: ``R:reel`` on one line and ``R:jig`` on the next are two
  seeds, so are ``K:Ador`` and ``K:D``.
* One line may hold several fields separated by spaces: ``M:6/8 K:D``, ``T:Morning Star R:reel K:D``.

A seed without music is expanded into a prompt: ``X:1``, ``T:`` (the seed's title, else e.g. ``Reel in D``),
``R:`` when given, ``M:`` (the seed's, else by rhythm: reel, hornpipe, strathspey 4/4, jig 6/8, slip jig 9/8,
slide 12/8, waltz, mazurka 3/4, polka 2/4; else 4/4), ``L:`` (the seed's, else 1/8), other fields as given,
and ``K:`` (the seed's, else G). Titles may hold any character: the model is primed with the title's characters
it knows and the output keeps the whole title; any other character the model does not know makes the seed bad.

Every good seed gives ``n`` tunes, numbered ``X:1..N`` across the output. A tune's random stream is
``fold_in(key(seed), row)`` with ``row = seed position in the file * n + copy``, so a tune is the same
whatever batch it is sampled in and whether other seeds are bad. Generated titles end in ``no. <X>``
(``Reel in D no. 3``); the model is primed without that number, so numbering never changes the music.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Iterator

from .endings import DEFAULT_CANDIDATES, draw_count, keep_best_draws
from .errors import InputError, UsageError
from .tunebook import FIELD_LINE, HEADER_KEEP, with_explicit_defaults

RHYTHM_METERS = (  # R: keyword -> default M:, longest keywords first so "slip jig" is not a "jig"
    ("slip jig", "9/8"), ("slide", "12/8"), ("jig", "6/8"), ("reel", "4/4"), ("hornpipe", "4/4"),
    ("strathspey", "4/4"), ("barndance", "4/4"), ("schottische", "4/4"), ("march", "4/4"),
    ("waltz", "3/4"), ("mazurka", "3/4"), ("polska", "3/4"), ("polka", "2/4"),
)
DEFAULT_METER, DEFAULT_UNIT, DEFAULT_KEY = "4/4", "1/8", "G"
MODE_WORDS = {"m": "minor", "Dor": "dorian", "Mix": "mixolydian", "Phr": "phrygian", "Lyd": "lydian",
              "Loc": "locrian"}
SPLIT_FIELDS = "XTRMLKQCO"  # fields that may follow another on one seed line ("M:6/8 K:D")
_FIELD = re.compile(r"^([A-Za-z]):(.*)$")
_INLINE_FIELD = re.compile(rf"\s+(?=[{SPLIT_FIELDS}]:)")
MAX_NAME_BYTES = 80  # file-name stems stay far below the usual 255-byte limit, extension and suffix included
WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
ROW_BYTES_PER_STEP_STATE = 4  # int32/float32 everywhere in the sampler's per-row state


@dataclass(frozen=True)
class Seed:
    """One prompt of a seeds file, as written."""

    index: int  # 0-based position among the file's seeds (bad ones included): decides the random stream
    source: str  # file name
    lines: tuple[tuple[int, str], ...]  # (1-based line number, line) as written, comments left out
    fields: tuple[tuple[str, str], ...]  # header fields in order, one-line seeds split
    header_lines: int  # how many of ``lines`` are header (up to the one holding K:)
    tunebook: bool  # started with X:; with music, its header is kept as written

    @property
    def line(self) -> int:
        return self.lines[0][0]

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    @property
    def body(self) -> str:
        """Music after the K: line ("" for a header-only seed)."""
        return "\n".join(line for _, line in self.lines[self.header_lines:])

    @property
    def label(self) -> str:
        """The seed on one short line, for messages."""
        return _label(self.lines)

    def field(self, name: str) -> str | None:
        return next((value.strip() for key, value in self.fields if key == name), None)

    def where(self) -> str:
        return f"{self.source}:{self.line}: seed {self.label!r}"


@dataclass(frozen=True)
class TunePlan:
    """One tune to write: what primes the model and how the result is numbered and titled."""

    number: int  # X: in the output, 1..N
    title: str  # T: in the output
    seed_index: int
    row: int  # random stream position: seed index * n + copy
    prompt: str  # what the model continues (X:1, the title without its number)
    sealed: bool = False  # the prompt ends in the note an open tie reaches: its pitch must not change
    where: str = ""  # the seed's place in its file (``seeds.txt:3``), for a problem found while sampling
    # the seed as the output shows it (annotations, comments, every character of its titles and tempo text),
    # and where the model's view of it ends in ``prompt``; "" when the output shows the prompt itself
    shown: str = ""
    view_length: int = 0
    fifths: int = 0  # the prompt is the seed moved by this many fifths (``continuation.in_home_key``)


@dataclass(frozen=True)
class ComposedTune:
    """A finished tune."""

    number: int  # X: in the output
    title: str  # T: in the output
    seed_index: int  # which seed (position in the seeds file) it grew from
    text: str  # the whole tune
    valid: bool  # abcflax.check_tune finds no problem
    generated: int  # characters the model wrote


# ---------------------------------------------------------------- reading seeds (no model needed)

def _label(lines) -> str:
    """A seed's lines on one short line, for messages."""
    flat = " / ".join(line.strip() for _, line in lines)
    return flat if len(flat) <= 60 else flat[:57] + "..."


def _split_fields(line: str) -> list[tuple[str, str]]:
    """``M:6/8 K:D`` -> [("M", "6/8"), ("K", "D")]."""
    return [(part[0], part[2:].split("%", 1)[0].strip()) for part in _INLINE_FIELD.split(line.strip()) if part]


def _chunks(lines: list[str]) -> list[list[tuple[int, str]]]:
    """Group (line number, line) pairs into raw seeds, following the module docstring's rules."""
    chunks: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    names: set[str] = set()  # fields the current seed already has
    tunebook = music = False

    def close():
        nonlocal current, names, tunebook, music
        if current:
            chunks.append(current)
        current, names, tunebook, music = [], set(), False, False

    for number, line in enumerate(lines, 1):
        if line.startswith("%") and not (tunebook and ("K" in names or music)):
            continue  # a note in the seeds file; inside a tune's music it is the tune's own, kept
        if not line.strip():
            close()
            continue
        fields = {name for name, _ in _split_fields(line)} if _FIELD.match(line) else set()
        if line.startswith("X:"):
            close()
            tunebook = True
        elif fields and not tunebook and ("K" in names or music or fields & names):
            close()  # a new one-line or header seed: after a K:, after music, or repeating a field
        current.append((number, line.rstrip()))
        music = music or not fields
        names |= fields if not music else set()
    close()
    return chunks


def _read_chunk(chunk: list[tuple[int, str]], index: int, source: str) -> Seed:
    """A raw seed as a ``Seed``; ValueError with the reason when its lines are not a seed."""
    fields: list[tuple[str, str]] = []
    header_lines = 0
    for _, line in chunk:
        if any(name == "K" for name, _ in fields):
            break
        if not _FIELD.match(line):
            raise ValueError("music before any K: (key) field")
        fields.extend(_split_fields(line))
        header_lines += 1
    return Seed(index, source, tuple(chunk), tuple(fields), header_lines, chunk[0][1].startswith("X:"))


def _check_seed(seed: Seed) -> None:
    """ValueError naming what is wrong with a seed's fields (key, meter, unit, repeated fields)."""
    from . import abc_check, constrain

    counts = {name: sum(1 for key, _ in seed.fields if key == name) for name in "RMLK"}
    repeated = [name for name, count in counts.items() if count > 1]
    if repeated:
        raise ValueError(f"{repeated[0]}: given twice in one seed")
    key = seed.field("K")
    if key is not None:
        if not key:
            raise ValueError("K: is empty: no key")
        if abc_check.parse_key(key)[1]:
            raise ValueError(abc_check.parse_key(key)[1])
    meter, problem = abc_check.parse_meter(meter_of(seed))
    unit_text = seed.field("L") or ("" if seed.tunebook and seed.body else DEFAULT_UNIT)
    unit, unit_problem = abc_check.parse_unit(unit_text) if unit_text else (abc_check.default_unit(meter), None)
    if problem or unit_problem:
        raise ValueError(problem or unit_problem)
    try:
        constrain.bar_ticks(meter.length, unit)
    except InputError as exc:
        raise ValueError(str(exc)) from None
    if seed.body.strip():
        _check_partial_tune(seed)


def _check_partial_tune(seed: Seed) -> None:
    """ValueError for a seed tune too long to prime or with malformed ABC (as ``complete`` refuses them)."""
    from .abc_check import blocking_problem, ends_open
    from .tunebook import MAX_TUNE_CHARS, several_voices

    if len(seed.text) > MAX_TUNE_CHARS:
        raise ValueError(f"tune is too long ({len(seed.text)} characters; limit {MAX_TUNE_CHARS})")
    voices = several_voices(seed.text)
    if voices is not None:
        raise ValueError(f"line {seed.line + voices[0]}: {voices[1]}")
    finished = "" if ends_open(seed.text) else "\n"  # a seed's last line is finished, but for a '{' or '~'
    problem = blocking_problem(seed.text + finished, partial=True)
    if problem is not None:
        raise ValueError(f"line {seed.line + problem.line - 1}:{problem.column}: {problem.message}")


def parse_seeds(text: str, source: str = "<seeds>") -> tuple[list[Seed], list[str]]:
    """(seeds, problems) from a seeds file's text; each problem is ``source:line: seed '...': why``.

    Bad seeds are reported and kept out of the list, but still count for the others' positions.
    """
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    seeds: list[Seed] = []
    problems: list[str] = []
    for index, chunk in enumerate(_chunks(lines)):
        try:
            seed = _read_chunk(chunk, index, source)
            _check_seed(seed)
        except ValueError as exc:
            problems.append(f"{source}:{chunk[0][0]}: seed {_label(chunk)!r}: {exc}")
            continue
        seeds.append(seed)
    if not seeds and not problems:
        problems.append(f"{source}: no seeds (one per line, e.g. 'R:reel K:D'; see abcflax compose --help)")
    return seeds, problems


# ---------------------------------------------------------------- seeds -> prompts and titles

def meter_of(seed: Seed) -> str:
    """The seed's M:, else the meter its rhythm (R:) implies, else 4/4 (a tune with music keeps its own)."""
    written = seed.field("M")
    if written is not None or (seed.tunebook and seed.body):
        return written or "none"
    rhythm = (seed.field("R") or "").lower()
    return next((meter for word, meter in RHYTHM_METERS if word in rhythm), DEFAULT_METER)


def key_words(key: str) -> str:
    """``Ador`` -> ``A dorian``, ``Em`` -> ``E minor``, ``D`` -> ``D`` (for generated titles)."""
    from .tunebook import normalize_key

    match = re.fullmatch(r"([A-G][#b]?)(m|Dor|Mix|Phr|Lyd|Loc)?", normalize_key(key))
    if not match:
        return key
    return match.group(1) + (f" {MODE_WORDS[match.group(2)]}" if match.group(2) else "")


def base_title(seed: Seed) -> str:
    """The seed's T:, else ``<Rhythm> in <key>`` (``Reel in D``, ``Tune in A dorian``)."""
    if seed.field("T"):
        return seed.field("T")
    rhythm = (seed.field("R") or "tune").strip()
    return f"{rhythm[:1].upper()}{rhythm[1:]} in {key_words(seed.field('K') or DEFAULT_KEY)}"


def seed_prompt(seed: Seed, title: str) -> str:
    """The text the model continues: the seed expanded into a header (and its music, if any)."""
    if seed.tunebook and seed.body:
        header = [line for _, line in seed.lines[:seed.header_lines] if not line.startswith("T:")]
        header = ["X:1" if line.startswith("X:") else line for line in header]
        header.insert(1 if header[0] == "X:1" else 0, f"T:{title}")
        return "\n".join(header + [seed.body])
    lines = ["X:1", f"T:{title}"]
    if seed.field("R") is not None:
        lines.append(f"R:{seed.field('R')}")
    lines += [f"M:{meter_of(seed)}", f"L:{seed.field('L') or DEFAULT_UNIT}"]
    lines += [f"{name}:{value}" for name, value in seed.fields if name not in "XTRMLK"]
    lines.append(f"K:{seed.field('K') or DEFAULT_KEY}")
    return "\n".join(lines + ([seed.body] if seed.body else []))


def _without_titles(line: str) -> str:
    """A header line with the values of its free-text fields blanked: title and tempo text reach the model only
    as far as its vocabulary goes, and composer and origin (C:, O:) not at all, as ``complete`` reads them."""
    def blank(match: re.Match) -> str:
        kept = "" if match.group(2) in "CO" else match.group(2) + ":"
        return match.group(1) + kept + " " * (len(match.group(0)) - len(match.group(1)) - len(kept))

    return re.sub(rf"(^|\s)([TQCO]):(.*?)(?=\s+[{SPLIT_FIELDS}]:|$)", blank, line)


def _model_header(prompt: str, chars: set[str]) -> str:
    """``prompt`` as the model reads its header: fields training tunes do not have left out, and the characters
    it does not know left out of its Q: lines."""
    lines = prompt.split("\n")
    end = next((i for i, line in enumerate(lines) if line.startswith("K:")), len(lines))
    header = [line for line in lines[:end] if not (FIELD_LINE.match(line) and line[0] not in HEADER_KEEP)]
    header = ["".join(ch for ch in line if ch in chars) if line.startswith("Q:") else line for line in header]
    return "\n".join(header + lines[end:])


def _check_characters(seed: Seed, prompt: str, chars: set[str]) -> None:
    """InputError naming the first character the model cannot read: where in the seed, or which line it adds."""
    for position, (number, line) in enumerate(seed.lines):
        text = _without_titles(line) if position < seed.header_lines else line
        column, ch = next(((col, ch) for col, ch in enumerate(text, 1) if ch not in chars), (0, ""))
        if ch:
            raise InputError(f"{seed.source}:{number}:{column}: seed {seed.label!r}: character {ch!r} "
                             f"(U+{ord(ch):04X}) is not in the model's vocabulary")
    for line in prompt.split("\n"):
        missing = next((ch for ch in line if ch not in chars), None)
        if missing is not None:
            raise InputError(f"{seed.where()}: its prompt line {line!r} needs character {missing!r}, "
                             f"which is not in the model's vocabulary")


def _tune_seed_prompt(seed: Seed, prompt: str, vocab_chars: tuple[str, ...]):
    """The model's view (a ``PromptView``) of a seed that is a tune with music: its prompt as ``complete``
    reads one (comments, lyrics and text annotations left out; an open tie continued with its note).
    Unknown characters are named by their line:column in the seeds file."""
    from .continuation import prompt_view

    prompt_view(seed.text, vocab_chars, seed.source, seed.line)
    return prompt_view(with_explicit_defaults(prompt), vocab_chars, seed.source)


def _vocab_safe(title: str, chars: set[str]) -> str:
    """A title without the characters the model does not know (only the prompt sees this; the output keeps all)."""
    return "".join(ch for ch in title if ch in chars).strip() or "".join(ch for ch in "Tune" if ch in chars)


def plan_tunes(seeds: str | list[Seed], n: int = 1, *, model=None, constrain: bool = True, source: str = "<seeds>",
               on_problem: Callable[[str], None] | None = None) -> list[TunePlan]:
    """Number, title and prompt of every tune ``compose`` would write, in output order.

    A bad seed is passed to ``on_problem`` as one line (``source:line: seed '...': why``) and left out;
    without ``on_problem`` the first bad seed raises InputError.
    """
    from . import constrain as constraint_module
    from .continuation import PromptView, in_home_key, with_grace_note
    from .loading import resolve_model
    from .sample import grammar_tables

    if n < 1:
        raise UsageError("n must be at least 1")
    report = on_problem or _raise
    if isinstance(seeds, str):
        seeds, problems = parse_seeds(seeds, source)
        for problem in problems:
            report(problem)
    loaded = resolve_model(model)
    chars = set(loaded.vocab.chars)
    tables = grammar_tables(loaded.vocab.chars) if constrain else None
    plans: list[TunePlan] = []
    for seed in seeds:
        generated = seed.field("T") is None
        shown = seed_prompt(seed, base_title(seed))
        prompt = _model_header(seed_prompt(seed, _vocab_safe(base_title(seed), chars)), chars)
        sealed, view_length, fifths = False, len(prompt), 0
        try:
            if seed.tunebook and seed.body:
                view = with_grace_note(loaded, in_home_key(_tune_seed_prompt(seed, prompt, loaded.vocab.chars)))
                prompt, sealed, view_length = view.text + view.forced, view.sealed, len(view.text)
                fifths = view.fifths
                shown = with_explicit_defaults(shown)
                shown += "" if shown.endswith("\n") else view.joint
            else:
                _check_characters(seed, prompt, chars)
                view = in_home_key(PromptView(prompt, "", ""))
                if view.fifths:  # the output shows the seed in its own key (``shown``), the model reads it moved
                    prompt, sealed, view_length, fifths = view.text, view.sealed, len(view.text), view.fifths
            if constrain:
                constraint_module.place_prompt(prompt, tables, loaded.vocab.chars, sealed)
        except InputError as exc:
            message = str(exc)
            report(message if message.startswith(seed.source) else f"{seed.where()}: {message}")
            continue
        for copy in range(n):
            number = len(plans) + 1
            title = f"{base_title(seed)} no. {number}" if generated else base_title(seed)
            plans.append(TunePlan(number, title, seed.index, seed.index * n + copy, prompt, sealed, seed.where(),
                                  shown if shown != prompt else "", view_length, fifths))
    return plans


def _raise(message: str) -> None:
    raise InputError(message)


# ---------------------------------------------------------------- sampling in batches

def auto_batch_size(tunes: int, model=None, max_chars: int = 1200) -> int:
    """Rows sampled together: a power of two, at most ``tunes`` rounded up, bounded by CPU and memory.

    Why these bounds: one sampler step multiplies a [B, H] state by each layer's weights. At B=1 that is a
    matrix-vector product limited by reading the weights from memory; with B rows the same weights serve B
    rows, and the step becomes compute-bound at a few dozen rows per core. Rows refill from a queue as their
    tunes end (continuous batching), so a big batch no longer waits for its slowest tune; past 32 rows per
    core it gains nothing more, and a smaller batch lets the validity check of one pool of tunes overlap the
    sampling of the next (``benchmarks/compose.py`` measures 8..128: 64 was best on 2 cores). Memory per row
    is small (carry, logits, token buffer, the [V, K] constraint intermediates); we still keep all rows
    within a quarter of free memory.
    """
    from .scoring import bucket

    cores = os.cpu_count() or 1
    by_cpu = bucket(min(32 * cores, 512), smallest=8)
    by_memory = by_cpu
    if model is not None:
        config = model.config
        per_row = ROW_BYTES_PER_STEP_STATE * (4 * config.layers * config.hidden + 64 * config.vocab_size
                                              + 2 * max_chars)
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            by_memory = max(1, free // 4 // per_row)
        except (ValueError, OSError, AttributeError):
            pass
    size = min(bucket(max(tunes, 1), smallest=1), by_cpu)
    while size > 1 and size > by_memory:
        size //= 2
    return size


def _set_header(text: str, number: int, title: str) -> str:
    """``text`` with its header's X: set to ``number`` and T: to ``title`` (added after X: when missing)."""
    lines = text.split("\n")
    end = next((i for i, line in enumerate(lines) if line.startswith("K:")), len(lines))
    x_at = next((i for i in range(end) if lines[i].startswith("X:")), None)
    t_at = next((i for i in range(end) if lines[i].startswith("T:")), None)
    if t_at is not None:
        lines[t_at] = f"T:{title}"
    if x_at is None:
        lines.insert(0, f"X:{number}")
        x_at = 0
    else:
        lines[x_at] = f"X:{number}"
    if t_at is None:
        lines.insert(x_at + 1, f"T:{title}")
    return "\n".join(lines)


def compose(seeds: str | list[Seed] | list[TunePlan], n: int = 1, *, model=None, batch_size: int | None = None,
            max_chars: int = 1200, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
            seed: int = 0, bars: int | None = None, until: str = "end", constrain: bool = True, min_bars: int = 4,
            source: str = "<seeds>", on_problem: Callable[[str], None] | None = None,
            candidates: int = DEFAULT_CANDIDATES, part_bars: int | None = None) -> Iterator[ComposedTune]:
    """Write ``n`` tunes per seed; yields tunes in order, a pool (``POOL_PER_ROW * batch_size`` tunes) at a time,
    as soon as the pool finishes. Each tune keeps the best-ending of ``candidates`` draws, as ``complete`` does.

    ``seeds`` is a seeds file's text, ``parse_seeds``' seeds, or ``plan_tunes``' plans (``n`` is then theirs).
    Seeds are checked now (bad ones go to ``on_problem``, or raise InputError without it); the sampling
    runs while the generator is consumed, ``batch_size`` rows at a time (default: ``auto_batch_size``).
    """
    from .loading import resolve_model
    from .sample import check_sampling_options

    check_sampling_options(temperature, top_k, top_p, bars, UsageError, part_bars)
    draws = draw_count(candidates, temperature, constrain, until)
    if batch_size is not None and batch_size < 1:
        raise UsageError("batch size must be at least 1")
    loaded = resolve_model(model)
    if seeds and all(isinstance(s, TunePlan) for s in seeds):
        plans = list(seeds)
    else:
        plans = plan_tunes(seeds, n, model=loaded, constrain=constrain, source=source, on_problem=on_problem)
    size = batch_size or auto_batch_size(len(plans), loaded, max_chars)
    options = dict(max_chars=max_chars, temperature=temperature, top_k=top_k or 0,
                   top_p=1.0 if top_p is None else top_p, bars=bars, until=until, min_bars=min_bars,
                   constrained=constrain, part_bars=part_bars)
    return _run(loaded, plans, size, seed, options, on_problem or _raise, draws)


POOL_PER_ROW = 4  # tunes queued per sampler row: rows refill from the queue as their tunes end


def _run(loaded, plans: list[TunePlan], size: int, seed: int, options: dict,
         report: Callable[[str], None], draws: int = 1) -> Iterator[ComposedTune]:
    """Sample pools of ``POOL_PER_ROW * size`` tunes (``draws`` each), ``size`` rows at a time; while the device
    writes one pool, the previous one is checked and yielded."""
    from .sample import Request, dispatch

    def sample_pool(batch: list[TunePlan]):
        requests = [Request(p.prompt, seed, p.row, p.sealed, draw) for p in batch for draw in range(draws)]
        return dispatch(loaded, requests, slots=size, **options)

    pool = max(1, POOL_PER_ROW * size // draws)
    pending = None
    for start in range(0, len(plans), pool):
        batch = plans[start:start + pool]
        try:
            queued = (batch, sample_pool(batch))
        except Exception:
            if pending:
                yield from _finish(*pending, sample_pool, report, options, draws)
            raise
        if pending:
            yield from _finish(*pending, sample_pool, report, options, draws)
        pending = queued
    if pending:
        yield from _finish(*pending, sample_pool, report, options, draws)


def _results(batch: list[TunePlan], work, sample_pool: Callable, report: Callable[[str], None], draws: int):
    """(plans, results) of the pool, each tune's best-ending draw; a tune the constrained decoder cannot finish
    is reported and left out, and the others are sampled again without it (each on its own random row, so they
    come out the same)."""
    from .sample import DeadEnd

    while True:
        try:
            return batch, keep_best_draws(work.results(), draws)
        except DeadEnd as exc:
            for index in exc.indices:
                plan = batch[index]
                report(f"{plan.where or 'seed'}: tune {plan.number} ({plan.title}): the constrained decoder "
                       "cannot finish it (try --no-constrain, or end the seed at a bar line)")
            batch = [plan for index, plan in enumerate(batch) if index not in exc.indices]
            if not batch:
                return [], []
            work = sample_pool(batch)


def _finish(batch: list[TunePlan], work, sample_pool: Callable, report: Callable[[str], None],
            options: dict, draws: int) -> Iterator[ComposedTune]:
    from .abc_check import check_tune, close_open_slurs
    from .sample import warn_if_short
    from .transposition import moved_back

    limits = {key: options[key] for key in ("bars", "until", "max_chars", "constrained")}

    for plan, result in zip(*_results(batch, work, sample_pool, report, draws)):
        warn_if_short(result, f"{plan.where or 'seed'}: tune {plan.number} ({plan.title})", **limits)
        added = result.text[plan.view_length:]
        if plan.fifths:
            try:
                added = moved_back(added, plan.fifths)
            except InputError as exc:
                report(f"{plan.where or 'seed'}: tune {plan.number} ({plan.title}): {exc}")
                continue
        written = plan.shown + added if plan.shown else result.text
        text = close_open_slurs(_set_header(written, plan.number, plan.title))
        yield ComposedTune(plan.number, plan.title, plan.seed_index, text, not check_tune(text), result.generated)


# ---------------------------------------------------------------- file names for per-tune exports

def safe_stem(title: str, fallback: str) -> str:
    """A file-name stem from a title: no path separators, ``..``, control or reserved characters; bounded."""
    text = unicodedata.normalize("NFKC", title)
    text = "".join(ch if (ch.isalnum() or ch in "-_.,()'") and unicodedata.category(ch)[0] != "C" else " "
                   for ch in text)
    text = re.sub(r"\.{2,}", ".", "_".join(text.split()))
    text = text.strip("._-,'")  # no hidden files, no names made of dots
    encoded = text.encode("utf-8")[:MAX_NAME_BYTES]
    text = encoded.decode("utf-8", errors="ignore").rstrip("._-,'")
    if not text or text.split(".")[0].lower() in WINDOWS_RESERVED:
        text = f"{fallback}_{text}" if text else fallback
    return text


def safe_file_names(titles: list[str]) -> list[str]:
    """One stem per title (``safe_stem``), unique ignoring case (``Reel``, ``Reel-2``...), never empty."""
    taken: set[str] = set()
    stems = []
    for number, title in enumerate(titles, 1):
        stem = base = safe_stem(title, f"tune-{number}")
        copy = 1
        while stem.lower() in taken:
            copy += 1
            stem = f"{base}-{copy}"
        taken.add(stem.lower())
        stems.append(stem)
    return stems
