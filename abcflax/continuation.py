"""``complete``: continue a partial tune; and its batched and tunebook forms."""

from __future__ import annotations

from .errors import InputError, UsageError
from .loading import resolve_model
from .sample import Request, check_sampling_options, generate
from .tunebook import BODY_FIELDS_KEEP, FIELD_LINE, HEADER_KEEP, read_tunebook

DEFAULT_MAX_CHARS = 1200  # about 24 bars of a reel with chords; the hard cap on generated characters
MAX_CHARS_LIMIT = 20_000  # the largest max_chars accepted (as the CLI's --max-chars): bounds time and memory


def _check_prompt(prefix: str, source: str, vocab) -> str:
    if not isinstance(prefix, str):
        raise InputError(f"{source}: expected ABC text, got {type(prefix).__name__}")
    text = prefix.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise InputError(f"{source}: empty input")
    tunes, problems = read_tunebook(text, source)
    if problems and not tunes:
        raise InputError(str(problems[0]))
    if len(tunes) > 1:
        raise InputError(f"{source}: holds {len(tunes)} tunes; complete() takes one (see complete_many)")
    if tunes:
        _require_known(tunes[0].text, vocab, source, tunes[0].line)
        _require_clean(tunes[0].text, source, tunes[0].line, ends_line=text.rstrip(" \t").endswith("\n"))
    return text


def _require_known(text: str, vocab, source: str, first_line: int) -> None:
    """Unknown characters in what the model reads: an error naming the file's line:column (checked first,
    as it says more than the checker's "unexpected character")."""
    for index, line in _view_lines(text, set(vocab.chars)):  # line by line: numbers as in the file
        vocab.encode(line, source, first_line + index)


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
             until: str = "end", constrain: bool = True, min_bars: int = 4) -> str:
    """The whole tune: ``abc_prefix`` and a sampled continuation of it.

    The LSTM is primed on the whole prefix; sampling runs inside jit. With ``constrain`` (the default)
    the continuation keeps the prefix's meter, unit length and key, fills every bar exactly, closes what
    is open and ends with a final bar line within ``max_chars``; ``bars`` adds that many bars and stops,
    ``until="section"`` stops at the end of the current part. The same seed gives the same tune.
    """
    return complete_many([abc_prefix], model=model, max_chars=max_chars, temperature=temperature, top_k=top_k,
                         top_p=top_p, seed=seed, bars=bars, until=until, constrain=constrain,
                         min_bars=min_bars)[0]


def complete_many(prefixes: list[str], *, model=None, max_chars: int = DEFAULT_MAX_CHARS,
                  temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None, seed: int = 0,
                  bars: int | None = None, until: str = "end", constrain: bool = True, min_bars: int = 4,
                  rows: list[int] | None = None) -> list[str]:
    """Continue several prefixes in one batched run; tune i uses (seed, rows[i]) as its random stream."""
    loaded = resolve_model(model)
    texts = [_check_prompt(p, f"tune {i + 1}" if len(prefixes) > 1 else "prompt", loaded.vocab)
             for i, p in enumerate(prefixes)]
    check_sampling_options(temperature, top_k, top_p, bars, InputError)
    if not isinstance(max_chars, int) or not 1 <= max_chars <= MAX_CHARS_LIMIT:
        raise UsageError(f"max_chars must be an integer in 1..{MAX_CHARS_LIMIT} (got {max_chars!r})")
    rows = list(range(len(texts))) if rows is None else rows
    views = [model_view(text, loaded.vocab.chars) for text in texts]
    requests = [Request(view, seed, row) for view, row in zip(views, rows)]
    results = generate(loaded, requests, max_chars=max_chars, temperature=temperature, top_k=top_k or 0,
                       top_p=1.0 if top_p is None else top_p, bars=bars, until=until, min_bars=min_bars,
                       constrained=constrain)
    return [_rejoin(text, view, r.text) for text, view, r in zip(texts, views, results)]


def model_view(text: str, vocab_chars: tuple[str, ...]) -> str:
    """The prompt as the model saw tunes in training: without comments, ``%%`` directives, lyrics and other
    non-music field lines, and without title characters it does not know (``normalize_tune``'s rule).

    Music lines are kept exactly, so the constraint state and the continuation are unchanged.
    """
    return "\n".join(line for _, line in _view_lines(text, set(vocab_chars)))


def _view_lines(text: str, known: set[str]) -> list[tuple[int, str]]:
    """(0-based line index in ``text``, line as the model sees it) for the lines ``model_view`` keeps."""
    kept = []
    for index, line in enumerate(text.split("\n")):
        match = FIELD_LINE.match(line)
        if line.startswith("%") or (match and match.group(1) not in HEADER_KEEP + BODY_FIELDS_KEEP):
            continue
        if match and match.group(1) in ("T", "R"):
            line = "".join(ch for ch in line if ch in known)
        kept.append((index, line))
    return kept


def _rejoin(prompt: str, view: str, result: str) -> str:
    """The user's own prompt followed by what the model added after its view of it."""
    added = result[len(view):] if result.startswith(view) else result
    if view == prompt:
        return result
    if added and not prompt.endswith("\n") and view.endswith("\n"):
        prompt += "\n"  # the prompt ended in a dropped line (a comment): the music goes on the next line
    return prompt + added


def _validate(loaded, text: str, constrain: bool, source: str, first_line: int, ends_line: bool) -> None:
    """Raise the error ``complete`` would raise for this tune, before the batch runs."""
    from . import constrain as constraint_module
    from .sample import grammar_tables

    _require_known(text, loaded.vocab, source, first_line)
    _require_clean(text, source, first_line, ends_line)
    view = model_view(text, loaded.vocab.chars)
    if constrain:
        constraint_module.place_prompt(view, grammar_tables(loaded.vocab.chars), loaded.vocab.chars)


def complete_tunebook(text: str, source: str = "<text>", *, model=None, **options) -> tuple[str, list[str]]:
    """Continue every tune of a tunebook, in order, in one batch: (output tunebook, problems).

    A bad tune is reported as ``source:line: message`` and left out; the others are still continued.
    """
    loaded = resolve_model(model)
    tunes, found = read_tunebook(text, source)
    problems = [str(p) for p in found]
    good = []
    for tune in tunes:
        try:
            ends_line = tune is not tunes[-1] or text.rstrip(" \t").endswith("\n")
            _validate(loaded, tune.text, options.get("constrain", True), source, tune.line, ends_line)
            good.append(tune)
        except InputError as exc:
            message = str(exc)
            problems.append(message if message.startswith(source) else f"{source}:{tune.line}: {message}")
    if not good:
        return "", problems or [f"{source}: no tune to continue"]
    outputs = complete_many([t.text for t in good], model=loaded, **options)
    return "\n".join(out.rstrip("\n") + "\n" for out in outputs), problems
