"""Shared by the benchmark scripts: print a report and, when asked, append it to benchmarks/RESULTS.md."""

from __future__ import annotations

import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def publish(title: str, lines: list[str], append: bool, fenced: bool = False) -> None:
    """Print ``lines``; with ``append``, add them under a dated ``## title`` heading (in a code block when
    ``fenced``: plain text; else as Markdown, e.g. a table)."""
    report = "\n".join(lines)
    print(report)
    if append:
        body = f"```\n{report}\n```" if fenced else report
        with RESULTS.open("a", encoding="utf-8") as handle:
            handle.write(f"\n## {title} — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n{body}\n")
