"""abcflax command line: each command parses, calls one public function, formats the result.

Commands load lazily (click's LazyGroup pattern), so ``abcflax --help`` never imports JAX or music21.
"""

from __future__ import annotations

from .common import main_group


def main() -> None:
    main_group(prog_name="abcflax")


if __name__ == "__main__":
    main()
