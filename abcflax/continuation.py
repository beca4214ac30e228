"""``complete``: continue a partial tune; and its batched and tunebook forms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .abc_check import EMPTY_GRACE, OPEN_GRACE, close_open_slurs, ends_open
from .composer import auto_batch_size
from .endings import DEFAULT_CANDIDATES, draw_count, keep_best_draws
from .errors import InputError, UsageError
from .loading import resolve_model
from .sample import MAX_CHARS_LIMIT, DeadEnd, Request, check_sampling_options, generate, warn_if_short
from .tunebook import (BODY_FIELDS_KEEP, FIELD_LINE, HEADER_KEEP, each_tune, field_as_read, header_fields,
                       is_chord_symbol, is_no_chord, numbered_in_file, read_tunebook, several_voices,
                       with_explicit_defaults)

DEFAULT_MAX_CHARS = 1200  # about 24 bars of a reel with chords; the hard cap on generated characters


def _check_prompt(prefix: str, source: str, vocab) -> tuple[str, PromptView]:
    """(the prompt with its header's defaults written out, the model's view of it); InputError if it is not
    one tune that can be continued."""
    if not isinstance(prefix, str):
        raise InputError(f"{source}: expected ABC text, got {type(prefix).__name__}")
    text = prefix.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise InputError(f"{source}: empty input")
    tunes, problems = read_tunebook(text, source, allow_empty_body=True)
    if problems and not tunes:
        raise InputError(str(problems[0]))
    if len(tunes) > 1:
        raise InputError(f"{source}: holds {len(tunes)} tunes; complete() takes one (see complete_many)")
    tune = tunes[0]
    ends_line = _finished_line(tune, text.rstrip(" \t").endswith("\n"))
    lead = "\n".join(text.split("\n")[:tune.line - 1])  # lines before the tune (a file header) are kept
    checked, view = _prepared(tune.full_text + ("\n" if ends_line else ""), vocab, source,
                              tune.line - len(tune.inherited), ends_line)
    return (lead + "\n" if lead else "") + checked, view


def _finished_line(tune, newline_follows: bool) -> bool:
    """Whether the tune's last line is finished: a line break follows it, and it does not stop inside grace
    notes or after a decoration (that line break is a file's last newline, left out)."""
    return newline_follows and not ends_open(tune.full_text)


def _prepared(text: str, vocab, source: str, first_line: int, ends_line: bool) -> tuple[str, PromptView]:
    """Check one tune as a prompt (errors name the file's line:column); (text with defaults, view)."""
    _require_one_voice(text, source, first_line)
    written = with_explicit_defaults(text)
    added = written.count("\n") - text.count("\n")  # header lines, before any line the view can complain of
    view = prompt_view(written, vocab.chars, source, first_line - added)  # unknown characters first: it says
    _require_clean(text, source, first_line, ends_line)                   # more than the checker
    return written, in_register(in_home_key(view))


def _require_one_voice(text: str, source: str, first_line: int) -> None:
    """The model writes one melody line; a tune of several voices (``V:``) cannot be continued in step."""
    problem = several_voices(text)
    if problem is not None:
        raise InputError(f"{source}:{first_line + problem[0]}: {problem[1]}")


def _require_clean(text: str, source: str, first_line: int, ends_line: bool = True) -> None:
    """Refuse a prompt with malformed ABC: the sampler's grammar would continue from a wrong state.

    ``ends_line``: the prompt's last line is finished, so a quote or chord still open there is malformed.
    """
    from .abc_check import blocking_problem

    problem = blocking_problem(text + "\n" if ends_line else text, partial=True)
    if problem is not None:
        raise InputError(f"{source}:{first_line + problem.line - 1}:{problem.column}: {problem.message}")


def complete(abc_prefix: str, *, model=None, max_chars: int = DEFAULT_MAX_CHARS, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, seed: int = 0, bars: int | None = None,
             until: str = "end", constrain: bool = True, min_bars: int = 4,
             candidates: int = DEFAULT_CANDIDATES, part_bars: int | None = None) -> str:
    """The whole tune: ``abc_prefix`` and a sampled continuation of it.

    The LSTM is primed on the whole prefix; sampling runs inside jit. With ``constrain`` (the default)
    the continuation keeps the prefix's meter, unit length and key, fills every bar exactly, closes what
    is open and ends with a final bar line within ``max_chars``; ``bars`` adds that many bars and stops,
    ``until="section"`` stops at the end of the current part. When the tune is to end, ``candidates``
    continuations are drawn in one batch and the first that ends on the key's tonic is kept (else the
    first on its tonic chord, else the first): see ``abcflax.endings``. Each part (up to ||, |], |:, :| or
    ::) is ``part_bars`` bars long; by default the length of the prompt's own last whole part, else 8 (or 4),
    and 0 leaves part lengths to the model. The same seed gives the same tune.
    """
    return complete_many([abc_prefix], model=model, max_chars=max_chars, temperature=temperature, top_k=top_k,
                         top_p=top_p, seed=seed, bars=bars, until=until, constrain=constrain,
                         min_bars=min_bars, candidates=candidates, part_bars=part_bars)[0]


def complete_many(prefixes: list[str], *, model=None, max_chars: int = DEFAULT_MAX_CHARS,
                  temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None, seed: int = 0,
                  bars: int | None = None, until: str = "end", constrain: bool = True, min_bars: int = 4,
                  rows: list[int] | None = None, candidates: int = DEFAULT_CANDIDATES,
                  part_bars: int | None = None) -> list[str]:
    """Continue several prefixes in one batched run; tune i uses (seed, rows[i]) as its random stream."""
    loaded = resolve_model(model)
    checked = [_check_prompt(p, f"tune {i + 1}" if len(prefixes) > 1 else "prompt", loaded.vocab)
               for i, p in enumerate(prefixes)]
    return _continue_checked(loaded, checked, max_chars=max_chars, temperature=temperature, top_k=top_k,
                             top_p=top_p, seed=seed, bars=bars, until=until, constrain=constrain,
                             min_bars=min_bars, rows=rows, candidates=candidates, part_bars=part_bars)


def _continue_checked(loaded, checked: list[tuple[str, "PromptView"]], *, max_chars: int = DEFAULT_MAX_CHARS,
                      temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                      seed: int = 0, bars: int | None = None, until: str = "end", constrain: bool = True,
                      min_bars: int = 4, rows: list[int] | None = None,
                      candidates: int = DEFAULT_CANDIDATES, part_bars: int | None = None) -> list[str]:
    """Sample continuations of checked prompts ((text, view) pairs) in one batch; the whole tunes."""
    check_sampling_options(temperature, top_k, top_p, bars, InputError, part_bars)
    if not isinstance(max_chars, int) or not 1 <= max_chars <= MAX_CHARS_LIMIT:
        raise UsageError(f"max_chars must be an integer in 1..{MAX_CHARS_LIMIT} (got {max_chars!r})")
    rows = list(range(len(checked))) if rows is None else rows
    draws = draw_count(candidates, temperature, constrain, until)
    checked = [(text, with_grace_note(loaded, view)) for text, view in checked]
    requests = [Request(view.text + view.forced, seed, row, sealed=view.sealed, draw=draw)
                for (_, view), row in zip(checked, rows) for draw in range(draws)]
    # many rows (a tunebook, times its draws) run a CPU-sized batch at a time, refilled as tunes end: the
    # same tunes, without a huge batch that is mostly filler and waits for its longest tune
    slots = auto_batch_size(len(requests), loaded, max_chars)
    drawn = generate(loaded, requests, max_chars=max_chars, temperature=temperature, top_k=top_k or 0,
                     top_p=1.0 if top_p is None else top_p, bars=bars, until=until, min_bars=min_bars,
                     constrained=constrain, slots=slots, part_bars=part_bars)
    results = keep_best_draws(drawn, draws)
    for index, ((text, _), result) in enumerate(zip(checked, results)):
        warn_if_short(result, _tune_label(text, index, len(checked)), bars=bars, until=until, max_chars=max_chars,
                      constrained=constrain)
    return [_rejoin(text, view, r.text) for (text, view), r in zip(checked, results)]


def _tune_label(text: str, index: int, count: int) -> str:
    """How a message names a prompt: its X: number and title in a batch of several; "" for a lone prompt."""
    if count == 1:
        return ""
    fields = header_fields(text.split("\n"))
    label = f"X:{fields['X']}" if fields.get("X") else f"tune {index + 1}"
    return f"{label} ({fields['T']})" if fields.get("T") else label


# ---------------------------------------------------------------- the prompt as the model reads it

@dataclass(frozen=True)
class PromptView:
    """A prompt as the model reads it, and how its continuation joins the user's text."""

    text: str  # what the model is primed on: the prompt as training tunes were written (``normalize_tune``)
    joint: str  # written between the user's prompt and the continuation: "\n" after a trailing comment
    forced: str  # what the continuation must start with: the pitch of a tie left open at the prompt's end,
    # or the "}" of grace notes left open there
    # the prompt stops just after a '{' (or '{^'): the grace note is the model's to choose (``with_grace_note``)
    # and goes before ``forced``'s "}"
    grace_note_owed: bool = False
    octaves: int = 0  # the view's notes are this many octaves above the prompt's (``in_register``)
    fifths: int = 0  # the view is the prompt moved by this many fifths (``in_home_key``)

    @property
    def sealed(self) -> bool:
        """The prompt's last pitch may take no more octave marks: a tie reaches it, or the view is moved by
        octaves or fifths (a mark written after the move could not be moved back on its own)."""
        moved = self.octaves or self.fifths
        return bool(self.forced.strip("}")) or bool(moved and _ENDS_IN_PITCH.search(self.text))


# the last line ends in a pitch, not in a field line's letter (K:G); G:| is a note before a repeat sign
_ENDS_IN_PITCH = re.compile(r"(?:^|\n)(?![A-Za-z]:(?![|:]))[^\n]*[A-Ga-g][,']*\Z")


def in_home_key(view: PromptView) -> PromptView:
    """``view`` moved by fifths to a key whose tonic is G or D, the model's best (``transposition.
    home_key_shift``; from a bare header it ended on the tonic in 89-95% of tunes there, 47-80% on other
    tonics), in its own mode; ``_rejoin`` moves what the model adds back. Not for a prompt that stops where
    the next character's spelling depends on the key (after an accidental, inside a chord symbol, an
    inline field or a decoration), nor for one that cannot be moved plainly."""
    from dataclasses import replace

    from .transposition import home_key_shift, transpose

    fifths = home_key_shift(view.text)
    if not fifths or _SPELLED_BY_KEY_AT_END.search(view.text.rsplit("\n", 1)[-1]):
        return view
    try:
        return replace(view, text=transpose(view.text, fifths),
                       forced=transpose(view.forced, fifths, body_only=True), fifths=fifths)
    except InputError:
        return view


# the end of a prompt's last line where the next character's spelling depends on the key: an accidental,
# or inside a chord symbol, an inline field or a !decoration!
_SPELLED_BY_KEY_AT_END = re.compile(r'[\^_=]+$|^(?:[^"]*"[^"]*")*[^"]*"[^"]*$|\[[A-Za-z]:[^\]]*$|^(?:[^!]*![^!]*!)*[^!]*![^!]*$')


GRACE_LETTERS = "ABCDEFGabcdefg"


def with_grace_note(loaded, view: PromptView) -> PromptView:
    """``view`` with the grace note it owes (``grace_note_owed``) chosen: the pitch letter the model finds
    likeliest after the prompt's '{'. The sampler writes no grace notes of its own; graces take no time, so
    the choice does not change where the continuation stands in its bar."""
    if not view.grace_note_owed:
        return view
    from dataclasses import replace

    import numpy as np

    from .scoring import prime

    ids = np.concatenate([[loaded.vocab.bos_id], loaded.vocab.encode(view.text)]).astype(np.int32)
    logits = np.asarray(prime(loaded.weights, [ids])[2])[0]
    letters = [ch for ch in GRACE_LETTERS if ch in loaded.vocab.chars]
    best = max(letters, key=lambda ch: logits[loaded.vocab.id_of(ch)])
    return replace(view, forced=best + view.forced, grace_note_owed=False)


def in_register(view: PromptView) -> PromptView:
    """``view`` moved by whole octaves into the register the model was trained in, if it is far from it
    (``transposition.register_shift``); ``_rejoin`` moves what the model adds back down (or up)."""
    from dataclasses import replace

    from .transposition import register_shift, shift_octaves

    octaves = register_shift(view.text)
    if not octaves:
        return view
    return replace(view, text=shift_octaves(view.text, octaves),
                   forced=shift_octaves(view.forced, octaves, body_only=True), octaves=octaves)


_INLINE_FIELD = re.compile(r"\[([A-Za-z]):[^\]\n]*\]")
_TIED_END = re.compile(  # a note or chord tied at the very end, maybe followed by bar lines, chord symbols, fields
    r"(?P<note>[_^=]{0,2}[A-Ga-g][,']*|\[[^\]\n]*\])[0-9/]*-"
    r"(?P<after>(?:[ \t\n|:\]]|\"[^\"\n]*\"|\[[A-Za-z]:[^\]\n]*\]|(?<=\n)[A-Za-z]:[^\n]*)*)$")
_FIELDS_IN = re.compile(r"\[([A-Za-z]):([^\]\n]*)\]|(?:^|(?<=\n))([A-Za-z]):([^\n]*)")
_ALTERATIONS = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}
_PITCH = re.compile(r"([_^=]{0,2})([A-Ga-g][,']*)")


def prompt_view(text: str, vocab_chars: tuple[str, ...], source: str = "prompt",
                first_line: int = 1) -> PromptView:
    """``text`` (one tune) as the model reads it: comments, ``%%`` directives, lyrics, free-text fields,
    ``+:`` continuations, text annotations, ``$`` score line breaks and title characters it does not know
    left out, as ``normalize_tune`` leaves them out of training tunes; notes and bar lines kept exactly, so
    the constraint state is the prompt's own. A character the model does not know in what it keeps is an
    InputError naming the file's line:column.
    """
    known = set(vocab_chars)
    lines = text.split("\n")
    body_start = next((i + 1 for i, line in enumerate(lines) if line.startswith("K:")), len(lines))
    kept: list[str] = []
    joint = ""
    for index, line in enumerate(lines):
        last = index == len(lines) - 1
        match = FIELD_LINE.match(line)
        if match:
            seen = _field_view(match.group(1), match.group(2), known)
            cut = True  # a field line ends where it ends: music goes on the next line
        elif line.startswith(("%", "+:")) or index < body_start:
            seen, cut = None, True
        else:
            seen, cut = _music_view(line, known, source, first_line + index, keep_end=last)
        if seen is not None and (seen.strip() or last):
            kept.append(seen)
        if last and cut and line.strip():
            joint = "\n"  # the prompt ends in text the music cannot follow on the same line
    view = "\n".join(kept)
    if joint and not view.endswith("\n") and not view.rstrip(" \t").endswith("\\"):
        view += "\n"
    if view.rstrip(" \t").endswith("\\"):
        view = view.rstrip(" \t")[:-1]  # a line continued with \ goes on after it: the model reads one line
        joint = "\n"
    view_lines = view.split("\n")  # fewer than the text's: text fields and comments are left out of it
    view_body = next((i + 1 for i, line in enumerate(view_lines) if line.startswith("K:")), len(view_lines))
    if not joint and re.search(OPEN_GRACE + r"\Z", view):
        return PromptView(view, joint, "}")  # the continuation closes the grace notes the prompt stopped in
    if not joint and re.search(EMPTY_GRACE + r"\Z", view):
        return PromptView(view, joint, "}", grace_note_owed=True)  # and writes their note first
    return PromptView(view, joint, _open_tie_pitch(view, view_body))


def _field_view(name: str, value: str, known: set[str]) -> str | None:
    """A field line as the model reads it, or None for fields training tunes do not have."""
    return field_as_read(name, value, known)


def _music_view(line: str, known: set[str], source: str, line_number: int,
                keep_end: bool) -> tuple[str, bool]:
    """(a music line as the model reads it, whether text the music cannot follow ended it: a comment).

    Trailing blanks are kept on the prompt's last line (``keep_end``): a space there separates the last
    note from what comes next.
    """
    out: list[str] = []
    cut = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == '"':
            close = line.find('"', i + 1)
            if close < 0:  # a chord symbol still being written at the prompt's end: the model finishes it
                out.extend(_known_or_raise(line, i, len(line), known, source, line_number))
                break
            if is_chord_symbol(line[i + 1:close]):
                out.extend(_known_or_raise(line, i, close + 1, known, source, line_number))
            i = close + 1  # annotations (text, not music) are left out
            continue
        if ch == "%" and (i == 0 or line[i - 1] != "\\"):
            cut = True
            break
        inline = _INLINE_FIELD.match(line, i)
        if inline and inline.group(1) not in HEADER_KEEP + BODY_FIELDS_KEEP:
            i = inline.end()  # [r:remark] and other inline text fields
            continue
        if ch != "$":  # $ is a score line break: layout, not music
            out.extend(_known_or_raise(line, i, i + 1, known, source, line_number))
        i += 1
    seen = "".join(out)
    return (seen if keep_end and not cut else seen.rstrip()), cut


def _known_or_raise(line: str, start: int, end: int, known: set[str], source: str, line_number: int) -> str:
    for column in range(start, end):
        ch = line[column]
        if ch not in known:
            raise InputError(f"{source}:{line_number}:{column + 1}: character {ch!r} (U+{ord(ch):04X}) "
                             f"is not in the model's vocabulary")
    return line[start:end]


def _open_tie_pitch(view: str, body_start: int) -> str:
    """The note (or chord) a tie at the end of ``view`` must reach, written so that it sounds the same
    pitch after a bar line or a key change; "" when no tie is open."""
    body = "\n".join(view.split("\n")[body_start:])
    match = _TIED_END.search(body)
    if match is None:
        return ""
    note = match.group("note")
    pitches = _PITCH.findall(note)
    if not pitches:
        return ""
    keys = [m for m in _FIELDS_IN.finditer(match.group("after")) if (m.group(1) or m.group(3)) == "K"]
    crosses_bar = re.search(r"[|:]", _FIELDS_IN.sub("", match.group("after"))) is not None
    # a tie from the last note of a full bar reaches its note across a bar line, which is not yet written
    bar_line = "" if crosses_bar or not _last_bar_full(view) else "|"
    crosses_bar = crosses_bar or bool(bar_line)
    bar = re.split(r"[|:]", body[:match.start()])[-1]
    if keys:  # under a new key the pitch is written with its accidental, whatever the new key says
        old_key = _key_before(view, body_start, match.start())
        written = [_absolute(_carried(accidental, pitch, bar), pitch, old_key) + pitch for accidental, pitch in pitches]
    else:
        written = [(_carried(accidental, pitch, bar) if crosses_bar else accidental) + pitch
                   for accidental, pitch in pitches]
    return bar_line + (f"[{''.join(written)}]" if note.startswith("[") else written[0])


def _last_bar_full(view: str) -> bool:
    """Whether the bar the prompt ends in, not yet closed, already holds the meter's whole length."""
    from .abc_check import analyze_tune

    bars = analyze_tune(view).bars
    last = bars[-1] if bars else None
    return (last is not None and not last.closing and last.expected is not None
            and last.duration >= last.expected)


def _key_before(view: str, body_start: int, offset: int) -> dict[str, int]:
    """Letter -> alteration of the key in force ``offset`` characters into the body (header K:, then changes)."""
    from .abc_check import parse_key

    lines = view.split("\n")
    header_key = next((line[2:] for line in reversed(lines[:body_start]) if line.startswith("K:")), "")
    changes = _FIELDS_IN.finditer("\n".join(lines[body_start:])[:offset])
    values = [header_key] + [m.group(2) or m.group(4) or "" for m in changes if (m.group(1) or m.group(3)) == "K"]
    signature: dict[str, int] = {}
    for value in values:
        parsed, _ = parse_key(value)
        if parsed is not None:
            signature = parsed
    return signature


def _absolute(accidental: str, pitch: str, key: dict[str, int]) -> str:
    """The accidental that writes ``pitch`` as it sounds, whatever key is in force: ``accidental`` if given,
    else the old key's."""
    if accidental:
        return accidental
    alteration = key.get(pitch[0].upper(), 0)
    return next(mark for mark, value in _ALTERATIONS.items() if value == alteration)


def _carried(accidental: str, pitch: str, bar: str) -> str:
    """The accidental in force for ``pitch`` at the end of ``bar`` (ABC 2.1: an accidental lasts to the
    bar line, for that pitch in that octave); "" when the key signature's applies."""
    if accidental:
        return accidental
    for earlier, same in reversed(_PITCH.findall(bar)):
        if same == pitch and earlier:
            return earlier
    return ""


_LEADING_CHORD_SYMBOL = re.compile(r'^([ \t\n]*)"[^"\n]*"')
_LAST_QUOTED = re.compile(r'"([^"\n]*)"[ \t\n]*$')


def _ends_in_no_chord(prompt: str) -> bool:
    """Whether the prompt's music ends in a "no chord" mark (``"N.C."``), which the model never reads."""
    match = _LAST_QUOTED.search(prompt)
    return match is not None and is_no_chord(match.group(1))


def _rejoin(prompt: str, view: PromptView, result: str) -> str:
    """The user's own prompt followed by what the model added after its view of it."""
    added = result[len(view.text):] if result.startswith(view.text) else result
    if view.octaves:
        from .transposition import shift_octaves

        added = shift_octaves(added, -view.octaves, body_only=True)
    if view.fifths:
        from .transposition import moved_back

        added = moved_back(added, view.fifths)
    if _ends_in_no_chord(prompt):
        added = _LEADING_CHORD_SYMBOL.sub(r"\1", added, count=1)  # "N.C." is the harmony of the notes it stands before
    if not added:
        return prompt
    return close_open_slurs(prompt + ("" if prompt.endswith("\n") else view.joint) + added)


def complete_tunebook(text: str, source: str = "<text>", *, model=None,
                      on_start: Callable[[int], None] | None = None, **options) -> tuple[str, list[str]]:
    """Continue every tune of a tunebook, in order, in one batch: (output tunebook, problems).

    A bad tune is reported as ``source:line:col: message`` and left out; the others are still continued.
    ``on_start(number of tunes)`` is called once every tune is checked, before sampling starts.
    """
    loaded = resolve_model(model)
    tunes = read_tunebook(text, source, allow_empty_body=True)[0]
    last_start = tunes[-1].line if tunes else 0
    constrained = options.get("constrain", True)

    def check(tune) -> tuple[tuple[str, PromptView], int]:
        ends_line = _finished_line(tune, tune.line != last_start or text.rstrip(" \t").endswith("\n"))
        with numbered_in_file(tune):  # a header problem names the line check names
            checked = _prepared(tune.full_text + ("\n" if ends_line else ""), loaded.vocab, source,
                                tune.line - len(tune.inherited), ends_line)  # the file header's lines count
        last_line = tune.line + tune.text.rstrip("\n").count("\n")  # where the prompt ends, and is stuck
        if constrained:
            _require_placeable(loaded, checked[1], f"{source}:{last_line}")
        return checked, last_line

    done, problems = each_tune(text, source, check, allow_empty_body=True)
    good = [checked for _, (checked, _) in done]
    lines = [last_line for _, (_, last_line) in done]
    if not good:
        return "", problems or [f"{source}: no tune to continue"]
    if on_start is not None:
        on_start(len(good))
    try:
        outputs = _continue_checked(loaded, good, **options)
    except DeadEnd as exc:  # rerun without the tunes that cannot be finished, each on its own random row
        for index in exc.indices:
            problems.append(f"{source}:{lines[index]}: the constrained decoder cannot finish this tune's last bar "
                            f"(try --no-constrain, or end the prompt at a bar line)")
        rows = [row for row in range(len(good)) if row not in exc.indices]
        outputs = _continue_checked(loaded, [good[row] for row in rows], rows=rows, **options) if rows else []
    return "\n".join(out.rstrip("\n") + "\n" for out in outputs), problems


def _require_placeable(loaded, view: PromptView, where: str) -> None:
    """The constrained sampler's error for this prompt (an unsupported last bar), raised before the batch and
    named by ``where`` (the file and the prompt's last line, where that bar is)."""
    from . import constrain as constraint_module
    from .sample import grammar_tables

    try:
        constraint_module.place_prompt(view.text + view.forced, grammar_tables(loaded.vocab.chars),
                                       loaded.vocab.chars, sealed=view.sealed)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
