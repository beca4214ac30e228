"""Character vocabulary with start- and end-of-tune markers; stored in every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

BOS = "\x02"  # start of tune (never in ABC text)
EOS = "\x03"  # end of tune


@dataclass(frozen=True)
class Vocab:
    """Sorted characters; ids 0 and 1 are the start- and end-of-tune markers."""

    chars: tuple[str, ...]  # id -> character, BOS and EOS first

    @classmethod
    def from_texts(cls, texts: list[str]) -> "Vocab":
        seen = set()
        for text in texts:
            seen.update(text)
        seen.discard(BOS)
        seen.discard(EOS)
        return cls((BOS, EOS, *sorted(seen)))

    @property
    def size(self) -> int:
        return len(self.chars)

    @property
    def bos_id(self) -> int:
        return 0

    @property
    def eos_id(self) -> int:
        return 1

    def index(self) -> dict[str, int]:
        return {ch: i for i, ch in enumerate(self.chars)}

    def id_of(self, ch: str) -> int:
        return self.chars.index(ch)

    def encode(self, text: str, source: str = "prompt", first_line: int = 1) -> np.ndarray:
        """int32 ids of ``text``; an unknown character raises naming it and its line:column.

        ``first_line`` is the line number of the text's first line in its file (for error messages).
        """
        table = self.index()
        ids = np.empty(len(text), dtype=np.int32)
        for pos, ch in enumerate(text):
            got = table.get(ch)
            if got is None:
                line = text.count("\n", 0, pos) + first_line
                column = pos - (text.rfind("\n", 0, pos) + 1) + 1
                raise InputError(
                    f"{source}:{line}:{column}: character {ch!r} (U+{ord(ch):04X}) is not in the model's vocabulary"
                )
            ids[pos] = got
        return ids

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids if int(i) > 1)
