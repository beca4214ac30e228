"""How a tune ends: on its key's tonic, on another note of its tonic chord, or elsewhere.

Folk tunes nearly always end on the tonic, but a char-LSTM that may end a tune after any full bar ends
one continuation in five or six there. ``best_ending`` picks, among several continuations of one prompt
(independent samples), the first that ends on the tonic, else the first that ends on its tonic chord:
that is sampling from the model's own tunes *given* a tonic ending (rejection sampling), so it adds no
bias of its own (not towards short or repetitive tunes, as a likelihood ranking would).
"""

from __future__ import annotations

import re
from functools import lru_cache

from .errors import UsageError

TONIC, TONIC_CHORD, ELSEWHERE = 0, 1, 2  # ending ranks: lower is better
# draws per tune: of 43 unseen prompts (benchmarks/validity_unseen.py's), 7 first draws ended on the tonic, and
# 39 prompts had a tonic ending among 8 draws (27 among 4); 8 draws in one batch cost ~4x one draw's sampling
DEFAULT_CANDIDATES = 8
MAX_CANDIDATES = 64
_FIELD_KEY = re.compile(r"^\[?K:([^\]]*)")


def tonic_triad(key_text: str) -> tuple[int, ...] | None:
    """Pitch classes of the tonic triad of a ``K:`` value, tonic first; None for K:none, highland pipes,
    or a key with no tonic letter (no tonic to prefer)."""
    from .harmonizer import parse_key
    from .tunebook import normalize_key

    if not re.match(r"^[A-G]", normalize_key(key_text.split("%", 1)[0])):
        return None
    key = parse_key(key_text)
    return key.scale[0], key.scale[2], key.scale[4]


def key_text_at_end(header_key: str, events) -> str:
    """The ``K:`` value in force after ``events`` (``abc_check`` events; the last K: field, inline or not)."""
    key_text = header_key
    for event in events:
        if event.kind == "field" and (match := _FIELD_KEY.match(event.text)):
            key_text = match.group(1)
    return key_text


@lru_cache(maxsize=1024)  # the kept draw is ranked twice when its tune's draws stopped early (sample.Pending)
def ending_rank(tune: str) -> int:
    """TONIC if the tune's last note (or every note of its last chord, tonic among them) is the tonic of
    the key in force at the end, TONIC_CHORD if it is another note of the tonic triad, else ELSEWHERE
    (also for a tune with no notes or no tonic)."""
    from .abc_check import analyze_tune

    analysis = analyze_tune(tune)
    last = ()
    for event in analysis.events:
        if event.kind in ("note", "chord") and event.pitches:
            last = event.pitches
    triad = tonic_triad(key_text_at_end(analysis.key, analysis.events))
    if triad is None or not last:
        return ELSEWHERE
    classes = {pitch % 12 for pitch in last}
    if not classes <= set(triad):
        return ELSEWHERE
    return TONIC if triad[0] in classes else TONIC_CHORD


def best_ending(tunes: list[str], finished: list[bool] | None = None) -> int:
    """Index of the tune to keep among candidates for one prompt: finished tunes first (one that hit its
    character limit did not end by itself), then by ``ending_rank``, then the earliest."""
    finished = [True] * len(tunes) if finished is None else finished
    return min(range(len(tunes)), key=lambda i: (not finished[i], ending_rank(tunes[i]), i))


def keep_best_draws(results: list, draws: int) -> list:
    """One result per tune from results that hold ``draws`` consecutive draws of each tune (anything with
    ``text`` and ``finished``): each tune's ``best_ending``."""
    if draws == 1:
        return list(results)
    groups = [results[start:start + draws] for start in range(0, len(results), draws)]
    return [group[best_ending([r.text for r in group], [r.finished for r in group])] for group in groups]


def draw_count(candidates: int, temperature: float, constrain: bool, until: str) -> int:
    """Draws per tune: ``candidates`` when they can differ and the choice is of how a tune ends; one for raw
    sampling (kept raw), a part that stops at its section's end, or greedy decoding (every draw the same)."""
    if not isinstance(candidates, int) or isinstance(candidates, bool) or not 1 <= candidates <= MAX_CANDIDATES:
        raise UsageError(f"candidates must be an integer in 1..{MAX_CANDIDATES} (got {candidates!r})")
    return candidates if constrain and until == "end" and temperature > 0 else 1
