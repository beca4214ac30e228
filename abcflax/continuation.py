"""``complete``: continue a partial tune; and its batched and tunebook forms."""

from __future__ import annotations

from .errors import InputError
from .loading import resolve_model
from .sample import Request, generate
from .tunebook import read_tunebook

DEFAULT_MAX_CHARS = 1200  # about 24 bars of a reel with chords; the hard cap on generated characters


def _check_prompt(prefix: str, source: str) -> str:
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
    return text


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
    texts = [_check_prompt(p, f"tune {i + 1}" if len(prefixes) > 1 else "prompt") for i, p in enumerate(prefixes)]
    if temperature is None or temperature < 0:
        raise InputError("temperature must be 0 or more")
    if top_p is not None and not 0 < top_p <= 1:
        raise InputError("top_p must be in (0, 1]")
    if top_k is not None and top_k < 0:
        raise InputError("top_k must be 0 or more")
    if bars is not None and bars < 1:
        raise InputError("bars must be at least 1")
    rows = list(range(len(texts))) if rows is None else rows
    requests = [Request(text, seed, row) for text, row in zip(texts, rows)]
    results = generate(loaded, requests, max_chars=max_chars, temperature=temperature, top_k=top_k or 0,
                       top_p=1.0 if top_p is None else top_p, bars=bars, until=until, min_bars=min_bars,
                       constrained=constrain)
    return [r.text for r in results]


def _validate(loaded, text: str, constrain: bool, source: str, first_line: int) -> None:
    """Raise the error ``complete`` would raise for this tune, before the batch runs."""
    from . import constrain as constraint_module
    from .sample import grammar_tables

    loaded.vocab.encode(text, source, first_line)
    if constrain:
        constraint_module.place_prompt(text, grammar_tables(loaded.vocab.chars), loaded.vocab.chars)


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
            _validate(loaded, tune.text, options.get("constrain", True), source, tune.line)
            good.append(tune)
        except InputError as exc:
            message = str(exc)
            problems.append(message if message.startswith(source) else f"{source}:{tune.line}: {message}")
    if not good:
        return "", problems or [f"{source}: no tune to continue"]
    outputs = complete_many([t.text for t in good], model=loaded, **options)
    return "\n".join(out.rstrip("\n") + "\n" for out in outputs), problems
