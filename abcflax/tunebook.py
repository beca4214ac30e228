"""Read ABC files and tunebooks, split them into tunes, and normalize tunes for training.

Reading never raises on a bad tune: ``read_tunebook`` returns the good tunes and a list of
problems, each naming the line where the bad tune starts (as magenta's ``parse_abc_tunebook`` does).

Normalization rule for training text (``normalize_tune``), documented in the README:
  * header: keep only X T M L Q K R (``X:`` renumbered to 1, one space-free ``field:value`` per line),
    in their original order, ending with ``K:``; key modes spelled one way (``D Major`` -> ``D``,
    ``E Minor`` -> ``Em``, ``A Dorian`` -> ``ADor``, ``G Mixolydian`` -> ``GMix``);
  * body: keep notes, bar lines, chord symbols and the field lines K M L P Q; drop comments (``%``),
    lyrics and free text (``w: W: N: Z: S: B: H: ...``), ``%%`` directives, text annotations
    (``"^text"``, ``"_text"``, fingering numbers — any quoted string that is not a chord symbol),
    the old ``!`` end-of-line marker and ``\\`` line continuations; trailing blanks are stripped.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import InputError, UsageError

# a bigger file is refused before it is read, to bound memory: the largest real tunebooks (music21's corpus,
# Nottingham) are under 1 MB, and text grows about 10x in memory as tunes, analyses and id arrays
MAX_INPUT_BYTES = 16 * 1024 * 1024
# a longer tune is reported as a problem, not read: the longest of 14,700 corpus tunes has 2,438 characters,
# and a megabyte-long "tune" would take minutes to prime, harmonize or render
MAX_TUNE_CHARS = 100_000
HEADER_KEEP = ("X", "T", "M", "L", "Q", "K", "R")
BODY_FIELDS_KEEP = ("K", "M", "L", "P", "Q")
FIELD_LINE = re.compile(r"^([A-Za-z]):(.*)$")
CHORD_SYMBOL = re.compile(
    r"^\(?[A-G][#b]?(?:m(?!aj)|min|maj|dim|aug|sus|add|M|d|a|\+|o|\u00f8)?[0-9]*"
    r"(?:(?:maj|sus|add|b|#)?[0-9]+)*(?:/[A-Ga-g][#b+]?)?\)?$"  # Nottingham writes a sharp bass as "D/f+"
)
QUOTED = re.compile(r'"([^"\n]*)"')
MODE_NAMES = {
    "major": "", "maj": "", "ionian": "", "ion": "", "minor": "m", "min": "m", "m": "m",
    "aeolian": "m", "aeo": "m", "dorian": "Dor", "dor": "Dor", "mixolydian": "Mix", "mix": "Mix",
    "phrygian": "Phr", "phr": "Phr", "lydian": "Lyd", "lyd": "Lyd", "locrian": "Loc", "loc": "Loc",
}


@dataclass(frozen=True)
class Problem:
    """Something wrong with one tune or file: where, and what."""

    source: str  # file name or "<stdin>"
    line: int  # 1-based line where the problem (or the bad tune) starts
    message: str
    column: int = 0  # 1-based; 0 when the problem is about a whole line or tune

    def __str__(self) -> str:
        where = f"{self.line}:{self.column}" if self.column else str(self.line)
        return f"{self.source}:{where}: {self.message}"


@dataclass(frozen=True)
class Tune:
    """One tune as written: its header lines up to ``K:`` and its body."""

    text: str  # the tune exactly as in the file (newlines normalized to \n)
    header: tuple[str, ...]  # header lines, X: to K: inclusive
    body: str  # everything after the K: line
    line: int  # 1-based line of X: (or of the first line) in the source
    source: str = "<text>"
    fields: dict = field(default_factory=dict, compare=False)  # first value of each header field
    # field lines of the tunebook's file header (before its first X:) that this tune does not set itself:
    # ABC 2.1 applies them to every tune (an M:6/8 or L:1/16 there is the meter of every tune below it)
    inherited: tuple[str, ...] = ()

    @property
    def full_text(self) -> str:
        """The tune with the file header's fields it inherits written into its header, before ``K:``."""
        if not self.inherited:
            return self.text
        lines = self.text.split("\n")
        key_at = len(self.header) - 1
        return "\n".join(lines[:key_at] + list(self.inherited) + lines[key_at:])

    def with_file_header(self) -> "Tune":
        """This tune as if its inherited fields were written in its own header (line numbers are then the
        tune's own: map them with ``file_line`` of the original)."""
        if not self.inherited:
            return self
        header = self.header[:-1] + self.inherited + self.header[-1:]
        return replace(self, text=self.full_text, header=header, fields=header_fields(list(header)), inherited=())

    def file_line(self, line: int) -> int:
        """The file's line number of line ``line`` (1-based) of ``full_text``."""
        key_line = len(self.header)  # the K: line, 1-based, in ``text``
        if line < key_line:
            return self.line + line - 1
        return self.line + max(key_line, line - len(self.inherited)) - 1

    @property
    def title(self) -> str:
        return self.fields.get("T", "").strip() or "Untitled"

    @property
    def number(self) -> str:
        return self.fields.get("X", "").strip()


def decode_bytes(data: bytes, source: str = "<bytes>") -> str:
    """Decode ABC bytes: UTF-8 (or UTF-16 with a BOM), else Latin-1; refuse binary and other formats."""
    if data.startswith(b"MThd"):
        raise InputError(f"{source}: this is a MIDI file, not ABC text")
    if data.startswith(b"PK\x03\x04"):
        raise InputError(f"{source}: this is a zip file (compressed MusicXML?), not ABC text")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError(f"{source}: cannot decode UTF-16 text") from None
    elif data.startswith(b"\xef\xbb\xbf"):
        text = data[3:].decode("utf-8", errors="replace")
    else:
        if b"\x00" in data[:65536]:
            raise InputError(f"{source}: binary data, not ABC text")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    head = text.lstrip()[:200].lower()
    if head.startswith("<?xml") or head.startswith("<score-partwise") or head.startswith("<!doctype score"):
        raise InputError(f"{source}: this is MusicXML, not ABC text")
    controls = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > 8:
        raise InputError(f"{source}: binary data, not ABC text")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_file_text(path: str | os.PathLike, *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """Read an ABC file (or ``-`` for stdin) as text, with errors that name the file."""
    import sys

    if str(path) == "-":
        data = sys.stdin.buffer.read(max_bytes + 1)
        source = "<stdin>"
    else:
        source = str(path)
        target = Path(path)
        if target.is_dir():
            raise InputError(f"{source}: is a directory, not an ABC file")
        try:
            info = target.stat()
            if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
                raise InputError(f"{source}: not a regular file")
            size = info.st_size
            if size > max_bytes:
                raise InputError(f"{source}: file too large ({size} bytes; limit {max_bytes})")
            data = target.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{source}: no such file") from None
        except PermissionError:
            raise InputError(f"{source}: permission denied") from None
        except OSError as exc:
            raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise InputError(f"{source}: input too large (limit {max_bytes} bytes)")
    return decode_bytes(data, source)


def header_fields(lines: list[str]) -> dict:
    """Each field letter's first value among ``lines`` (``{"X": "1", "T": "The Kesh", ...}``)."""
    fields: dict[str, str] = {}
    for line in lines:
        match = FIELD_LINE.match(line)
        if match and match.group(1) not in fields:
            fields[match.group(1)] = match.group(2).strip()
    return fields


def _split_blocks(text: str) -> list[tuple[int, list[str]]]:
    """Split a tunebook into (first line number, lines) blocks, one per ``X:`` field."""
    lines = text.split("\n")
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] | None = None
    start = 1
    for number, line in enumerate(lines, 1):
        if line.startswith("X:"):
            if current is not None:
                blocks.append((start, current))
            current, start = [line], number
        elif current is not None:
            current.append(line)
    if current is not None:
        blocks.append((start, current))
    if not blocks and any(line.startswith("K:") for line in lines):
        blocks.append((1, lines))  # a lone tune without X: is accepted
    return blocks


def _parse_block(start: int, lines: list[str], source: str, allow_empty_body: bool = False) -> Tune:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    # A tune ends at the first empty line after its body has started (ABC 2.1, section 2.2).
    header: list[str] = []
    k_index = None
    for index, line in enumerate(lines):
        if line.startswith("K:"):
            header.append(line)
            k_index = index
            break
        if not line.strip() and index > 0:
            break
        header.append(line)
    if k_index is None:
        raise ValueError("tune has no K: (key) field in its header")
    body_lines = lines[k_index + 1:]
    for index, line in enumerate(body_lines):
        if not line.strip():
            body_lines = body_lines[:index]
            break
    body = "\n".join(body_lines)
    if not body.strip() and not allow_empty_body:
        raise ValueError("tune has no music after its K: line")
    text = "\n".join(lines[: k_index + 1] + body_lines)
    if len(text) > MAX_TUNE_CHARS:
        raise ValueError(f"tune is too long ({len(text)} characters; limit {MAX_TUNE_CHARS})")
    return Tune(text=text, header=tuple(header), body=body, line=start, source=source,
                fields=header_fields(header))


def read_tunebook(text: str, source: str = "<text>", *,
                  allow_empty_body: bool = False) -> tuple[list[Tune], list[Problem]]:
    """Split ``text`` into tunes; bad tunes are reported as problems, never raised.

    ``allow_empty_body``: a header without music is a tune (a prompt to continue), not a problem.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    tunes: list[Tune] = []
    problems: list[Problem] = []
    blocks = _split_blocks(text)
    if not blocks:
        problems.append(Problem(source, 1, "no tune found (an ABC tune needs X: and K: fields)"))
    file_header = _file_header(text, blocks)
    for start, lines in blocks:
        try:
            tune = _parse_block(start, lines, source, allow_empty_body)
        except ValueError as exc:
            problems.append(Problem(source, start, str(exc)))
            continue
        inherited = tuple(line for line in file_header if FIELD_LINE.match(line).group(1) not in tune.fields)
        tunes.append(replace(tune, inherited=inherited) if inherited else tune)
    return tunes, problems


INHERITED_FIELDS = "MLQRCOZABDFGHNS"  # what a file header passes on (not X: T: K:, voices or lyrics)


def _file_header(text: str, blocks: list[tuple[int, list[str]]]) -> list[str]:
    """The field lines, later ones winning, of the block before a tunebook's first ``X:``."""
    if not blocks or not blocks[0][1] or not blocks[0][1][0].startswith("X:"):
        return []  # no tunebook (a lone tune without X: has no file header)
    fields: dict[str, str] = {}
    for line in text.split("\n")[:blocks[0][0] - 1]:
        match = FIELD_LINE.match(line)
        if match and match.group(1) in INHERITED_FIELDS:
            fields[match.group(1)] = f"{match.group(1)}:{strip_comment(match.group(2)).strip()}"
    return list(fields.values())


def each_tune(text: str, source: str, function, *, allow_empty_body: bool = False) -> tuple[list, list[str]]:
    """The tunebook policy (README): ``function(tune)`` for every tune of ``text``; ((tune, result) pairs of the
    good tunes, one ``source:line[:col]: why`` line per bad one, in file order). A tune that cannot be read, or
    that ``function`` refuses with an InputError, is left out, so a typo in tune 7 of 40 does not cost the rest."""
    tunes, found = read_tunebook(text, source, allow_empty_body=allow_empty_body)
    problems = [(problem.line, str(problem)) for problem in found]
    done = []
    for tune in tunes:
        try:
            done.append((tune, function(tune)))
        except InputError as exc:
            problems.append((tune.line, _located(str(exc), tune)))
    problems.sort(key=lambda item: item[0])  # stable: a tune's own lines keep their order
    return done, [message for _, message in problems]


def _located(message: str, tune: Tune) -> str:
    """``message`` naming the file, and the tune's first line when it names no place of its own."""
    return message if message.startswith(f"{tune.source}:") else f"{tune.source}:{tune.line}: {message}"


def map_tunes(abc: str, function, source: str = "<text>", problems: list[str] | None = None, *,
              keep_bad: bool = False) -> str:
    """Apply ``function(tune text, first line)`` to every tune of a tunebook, keeping all between tunes.

    Without ``problems`` the first bad tune is an InputError. With a list, the tunebook policy (``each_tune``):
    each bad tune is reported there and left out of the result ("" when no tune is good), or with ``keep_bad``
    kept as written (its lines, and so every later line number, stay where they were).
    """
    text = abc.replace("\r\n", "\n").replace("\r", "\n")

    def mapped(tune: Tune) -> str:
        with numbered_in_file(tune):
            result = function(tune.full_text, tune.line - len(tune.inherited))  # body lines keep their numbers
        return _without_inherited(result, tune)

    if problems is None:
        tunes, found = read_tunebook(text, source)
        if found:
            raise InputError(str(found[0]))
        return _splice(text, [(tune, mapped(tune)) for tune in tunes], keep_others=True)
    done, found = each_tune(text, source, mapped)
    problems.extend(found)
    if not done and not keep_bad:
        return ""
    return _splice(text, done, keep_others=keep_bad)


@contextlib.contextmanager
def numbered_in_file(tune: Tune):
    """An InputError raised inside that numbers ``tune.full_text``'s lines from ``tune.line - len(tune.inherited)``
    (so that its body lines are the file's) is raised again naming the file's line (``Tune.file_line``): the file
    header's fields written before ``K:`` shift the header lines above them, where check puts no shift."""
    try:
        yield
    except InputError as exc:
        match = re.match(rf"{re.escape(tune.source)}:(\d+)(?=:)", str(exc))
        if not tune.inherited or match is None:
            raise
        line = tune.file_line(int(match.group(1)) - tune.line + len(tune.inherited) + 1)
        raise InputError(f"{tune.source}:{line}{str(exc)[match.end():]}") from None


def _splice(text: str, replacements: list, keep_others: bool) -> str:
    """``text`` with each (tune, new text) written over the tune's lines; the lines of every other tune (from
    its first line to the blank line that ends it) kept, or removed."""
    lines = text.split("\n")
    spans = {start: _tune_length(block) for start, block in _split_blocks(text)}
    for tune, _ in replacements:
        spans[tune.line] = tune.text.count("\n") + 1
    new = {tune.line: result for tune, result in replacements}
    for start in sorted(spans, reverse=True):  # from the end, so earlier line numbers stay valid
        if start in new:
            lines[start - 1:start - 1 + spans[start]] = new[start].split("\n")
        elif not keep_others:  # with the blank line that ended it: one blank line stays between the others
            end = start - 1 + spans[start]
            del lines[start - 1:end + (end < len(lines) - 1 and not lines[end].strip())]
    return "\n".join(lines)


def _tune_length(block: list[str]) -> int:
    """How many lines a tune that could not be read takes: up to the blank line that ends it (ABC 2.1)."""
    return next((index for index, line in enumerate(block) if index and not line.strip()), len(block))


def tune_in_place(text: str, tune: Tune) -> str:
    """``text`` (the tunebook ``tune`` came from) with every line blanked but the file header's and the tune's
    own: read again, it holds that tune alone, at the same line and with the same inherited fields, so what a
    command says about it names the file's lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    blocks = _split_blocks(text)
    header_end = blocks[0][0] - 1 if blocks else 0
    own = range(tune.line - 1, tune.line - 1 + tune.text.count("\n") + 1)
    return "\n".join(line if index < header_end or index in own else "" for index, line in enumerate(lines))


def _without_inherited(text: str, tune: Tune) -> str:
    """``text`` (made from ``tune.full_text``) without the file header's lines written into its header again:
    the file header stays where it is, once."""
    if not tune.inherited:
        return text
    lines = text.split("\n")
    key_at = next((i for i, line in enumerate(lines) if line.startswith("K:")), None)
    start = None if key_at is None else key_at - len(tune.inherited)
    if start is None or start < 0 or tuple(lines[start:key_at]) != tune.inherited:
        return text
    return "\n".join(lines[:start] + lines[key_at:])


def several_voices(text: str) -> tuple[int, str] | None:
    """(0-based line, message) where a tune names its second voice (``V:`` line or ``[V:]``), or None."""
    seen: list[str] = []
    for index, line in enumerate(text.split("\n")):
        named = re.findall(r"\[V:\s*([^\]\s]+)", line)
        if line.startswith("V:") and line[2:].split():
            named.insert(0, line[2:].split()[0])
        for name in named:
            if name not in seen:
                seen.append(name)
            if len(seen) > 1:
                voices = ", ".join(f"V:{v}" for v in seen)
                return index, (f"the tune has several voices ({voices}); abcflax continues one melody line: "
                               f"keep one voice and continue that")
    return None


def default_unit_length(meter: str | None) -> str:
    """The unit note length a tune without ``L:`` has (``abc_check.default_unit``'s ABC 2.1 rule), as text."""
    from .abc_check import default_unit, parse_meter

    unit = default_unit(parse_meter(strip_comment(meter or ""))[0])
    return f"{unit.numerator}/{unit.denominator}"


_WHOLE_NOTE_UNIT = re.compile(r"(^|\[)L:([ \t]*)1(?=[ \t]*(?:$|\]|%))", re.M)


def with_explicit_defaults(text: str) -> str:
    """One tune with ``X:1`` first when it has no ``X:``, and its default unit note length written out as an
    ``L:`` line before ``K:`` when the header has none: abc2midi skips a tune without ``X:`` ("No tune
    processed"), and music21 cannot read notes without ``L:`` ("no active default note length"). A whole-note
    ``L:1`` (ABC 2.1) is written ``L:1/1``, the spelling both read."""
    lines = _WHOLE_NOTE_UNIT.sub(r"\1L:\g<2>1/1", text).split("\n")
    key_at = next((i for i, line in enumerate(lines) if line.startswith("K:")), None)
    if key_at is None:
        return text
    header = lines[:key_at]
    if not any(line.startswith("L:") for line in header):
        meter = next((line[2:] for line in header if line.startswith("M:")), None)
        lines.insert(key_at, f"L:{default_unit_length(meter)}")
    if not any(line.startswith("X:") for line in header):
        first = next((i for i, line in enumerate(header) if FIELD_LINE.match(line)), 0)
        lines.insert(first, "X:1")
    return "\n".join(lines)


def normalize_key(value: str) -> str:
    """``D Major`` -> ``D``, ``E minor`` -> ``Em``, ``A dorian`` -> ``ADor``; other text kept."""
    value = value.split("%", 1)[0].strip()
    match = re.match(r"^([A-G][#b]?)\s*([A-Za-z]*)\s*(.*)$", value)
    if not match:
        return value
    tonic, mode, rest = match.groups()
    mode_key = mode.lower()
    if mode_key in MODE_NAMES:
        mode = MODE_NAMES[mode_key]
    elif mode_key[:3] in MODE_NAMES and len(mode_key) >= 3:
        mode = MODE_NAMES[mode_key[:3]]
    elif mode:  # not a mode (``D clef=bass``): the text after the tonic is kept as written
        return value
    return (tonic + mode + (" " + rest if rest else "")).strip()


NO_CHORD_MARKS = ("N.C.", "NC", "No Chord", "None")  # what music21 reads as "no chord" (harmony.NoChord)


def is_no_chord(text: str) -> bool:
    """True for a quoted "no chord" mark (``"N.C."``): common in tunebooks, the harmony of the notes after it."""
    return text.strip() in NO_CHORD_MARKS


def is_chord_symbol(text: str) -> bool:
    """True for a quoted string that names a chord (``G``, ``D7``, ``Em``, ``A/c#``, ``Bbmaj7``)."""
    return bool(CHORD_SYMBOL.match(text.strip()))


def _clean_body_line(line: str) -> str:
    line = strip_comment(line)
    line = QUOTED.sub(lambda m: f'"{m.group(1).strip()}"' if is_chord_symbol(m.group(1)) else "", line)
    line = line.rstrip()
    if line.endswith("\\"):
        line = line[:-1].rstrip()
    if line.endswith("!") and line.count("!") % 2 == 1:
        line = line[:-1].rstrip()  # the old end-of-line '!' (not a !decoration!)
    return line


def strip_comment(line: str) -> str:
    # '%' starts a comment unless escaped; quoted strings are left alone.
    out, in_quote = [], False
    for index, ch in enumerate(line):
        if ch == '"':
            in_quote = not in_quote
        elif ch == "%" and not in_quote and (index == 0 or line[index - 1] != "\\"):
            break
        out.append(ch)
    return "".join(out)


def normalize_tune(tune: Tune) -> str | None:
    """Training text for ``tune`` by the module's rule, or None if nothing musical is left."""
    header: list[str] = []
    for line in tune.header:
        match = FIELD_LINE.match(line)
        if not match or match.group(1) not in HEADER_KEEP:
            continue
        name, value = match.group(1), strip_comment(match.group(2)).strip()
        if name == "X":
            value = "1"
        elif name == "K":
            value = normalize_key(value)
        if name == "X" or value:
            header.append(f"{name}:{value}")
    if not header or not header[-1].startswith("K:"):
        return None
    if not header[0].startswith("X:"):
        header.insert(0, "X:1")
    body: list[str] = []
    for line in tune.body.split("\n"):
        match = FIELD_LINE.match(line)
        if match:
            if match.group(1) in BODY_FIELDS_KEEP:
                value = strip_comment(match.group(2)).strip()
                if match.group(1) == "K":
                    value = normalize_key(value)
                body.append(f"{match.group(1)}:{value}")
            continue
        if line.startswith("%"):
            continue
        cleaned = _clean_body_line(line)
        if cleaned.strip():
            body.append(cleaned)
    if not any(re.search(r"[A-Ga-g]", line) for line in body if not FIELD_LINE.match(line)):
        return None
    return "\n".join(header + body) + "\n"


def iter_source_files(source: str) -> list[Path]:
    """ABC files named by ``source``: a file, or every ``*.abc`` under a folder."""
    path = Path(source)
    if path.is_dir():
        return sorted(p for p in path.rglob("*.abc") if p.is_file())
    if path.exists():
        return [path]
    raise InputError(f"{source}: no such file or folder")


def check_music21_name(name: str) -> None:
    """A ``UsageError`` unless ``name`` (of ``music21:NAME``) names one folder of music21's corpus: an empty
    name is the whole corpus, and ``..`` or a path would leave it (``music21:../..`` read every *.abc under
    Python's lib, for train and for evaluate)."""
    if not name or len(re.split(r"[/\\]", name)) > 1 or name in (".", "..") or ":" in name:
        raise UsageError(f"music21:{name}: name one folder of music21's corpus, as in music21:ryansMammoth, "
                         "music21:oneills1850 or music21:essenFolksong (no path, no ..)")


def music21_corpus_files(name: str) -> list[Path]:
    """The ABC files of one of music21's bundled corpora (``ryansMammoth``, ``oneills1850``, ...)."""
    import music21

    check_music21_name(name)

    root = Path(music21.__file__).parent / "corpus" / name
    if not root.is_dir():
        raise InputError(f"music21:{name}: no such music21 corpus folder")
    files = sorted(p for p in root.rglob("*.abc"))
    if not files:
        raise InputError(f"music21:{name}: has no ABC files")
    return files


def source_texts(sources: list[str]):
    """(ABC text, name) of every file named by ``sources``: files, folders, ``music21:NAME``, ``-`` (stdin,
    read once, named ``<stdin>``), one at a time."""
    if sources.count("-") > 1:
        raise UsageError("- (stdin) is named more than once: stdin can be read only once")
    for source in sources:  # every name checked before any source is read, as train checks its sources
        if source.startswith("music21:"):
            check_music21_name(source[8:])
    for source in sources:
        if source == "-":
            from .inputs import STDIN, stdin_bytes  # a closed stdin is one error line, as for the other commands

            yield decode_bytes(stdin_bytes(), STDIN), STDIN
            continue
        files = music21_corpus_files(source[8:]) if source.startswith("music21:") else iter_source_files(source)
        for path in files:
            yield read_file_text(path), str(path)


def load_corpus(sources: list[str]) -> tuple[list[str], list[Problem]]:
    """Normalized training tunes from files, folders, ``music21:NAME`` sources and ``-`` (stdin)."""
    texts: list[str] = []
    problems: list[Problem] = []
    for text, name in source_texts(sources):
        tunes, found = read_tunebook(text, name)
        problems.extend(found)
        for tune in tunes:
            normalized, problem = _training_text(tune)
            if problem is None:
                texts.append(normalized)
            else:
                problems.append(problem)
    return texts, problems


def training_text(tune: Tune) -> str:
    """``tune``'s normalized training text; InputError (``file:line:col: why``) for a tune that is skipped."""
    normalized, problem = _training_text(tune)
    if problem is not None:
        raise InputError(str(problem))
    return normalized


def _training_text(tune: Tune) -> tuple[str | None, Problem | None]:
    """(normalized text, None), or (None, why the tune is skipped): malformed ABC would teach bad syntax."""
    from .abc_check import blocking_problem

    problem = blocking_problem(tune.full_text)
    if problem is not None:
        return None, Problem(tune.source, tune.file_line(problem.line), problem.message, problem.column)
    normalized = normalize_tune(tune.with_file_header())
    if normalized is None:
        return None, Problem(tune.source, tune.line, "nothing musical left after normalizing")
    return normalized, None


# ---------------------------------------------------------------- a tune as a model reads it

def field_as_read(name: str, value: str, known) -> str | None:
    """A field line as a model with the characters ``known`` reads it, or None for a field training tunes do
    not have: ``K:`` spelled one way, ``M:`` and ``L:`` as written, and free text (titles, tempo text, ``R:``)
    without the characters the model does not know, which are text, not music (README)."""
    if name not in HEADER_KEEP + BODY_FIELDS_KEEP or name not in known:
        return None
    value = strip_comment(value).strip()
    if name == "K":
        value = normalize_key(value)
    elif name not in ("M", "L"):
        value = "".join(ch for ch in value if ch in known).strip()  # "Reel ♪" is read as "Reel", no blank after
    return f"{name}:{value}"


def text_as_read(tune: Tune, normalized: str, known) -> str:
    """``normalized`` (``tune``'s training text) as a model with the characters ``known`` reads it, as
    ``continue`` reads a prompt: text fields without the characters it does not know. InputError naming the
    file's line:column of a character it does not know in the music, which it cannot read."""
    kept = []
    for line in normalized.split("\n"):
        match = FIELD_LINE.match(line)
        if match:
            line = field_as_read(match.group(1), match.group(2), known)
        if line is not None:
            kept.append(line)
    text = "\n".join(kept)
    unknown = next((ch for ch in text if ch not in known), None)
    if unknown is not None:
        line, column = _first_in_music(tune, unknown)
        raise InputError(f"{tune.source}:{line}:{column}: character {unknown!r} (U+{ord(unknown):04X}) "
                         "is not in the model's vocabulary")
    return text


def _first_in_music(tune: Tune, char: str) -> tuple[int, int]:
    """(file line, column) of ``char``'s first place in ``tune`` outside comments, music lines first (where
    the characters a model cannot read are); the tune's first line when it is not found."""
    lines = tune.text.split("\n")
    body_first = sorted(range(len(lines)), key=lambda index: index < len(tune.header))
    for index in body_first:
        column = strip_comment(lines[index]).find(char)
        if column >= 0:
            return tune.line + index, column + 1
    return tune.line, 1


def tunes_as_read(books: list[tuple[str, str]], known) -> tuple[list[str], list[str], list[str]]:
    """The tunes of ``books`` ((ABC text, name) pairs) as ``evaluate`` scores them: (each good tune's training
    text as a model with the characters ``known`` reads it, one ``file:line:col: why`` line per bad tune (the
    tunebook policy), the characters of text fields left out because the model does not know them)."""
    texts, problems, left_out = [], [], []
    for text, name in books:
        done, found = each_tune(text, name, lambda tune: _normalized_and_read(tune, known))
        problems.extend(found)
        for _, (normalized, read) in done:
            texts.append(read)
            left_out.extend(ch for ch in normalized if ch not in known)
    return texts, problems, left_out


def _normalized_and_read(tune: Tune, known) -> tuple[str, str]:
    normalized = training_text(tune)
    return normalized, text_as_read(tune, normalized, known)
