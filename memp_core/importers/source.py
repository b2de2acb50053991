"""Reading input files safely: encodings, emptiness, binary sniffing, streaming and JSON.

Accepted encodings are UTF-8, UTF-8 with BOM and UTF-16 with BOM (what editors and
PowerShell's ``>`` write). Everything else fails with an :class:`ImportFormatError` that
names the file, the line and the reason. Line-based formats stream: memory stays bounded by
the longest line, and a byte counter feeds the caller's progress bar.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from memp_core.errors import ImportFormatError

Progress = Callable[[int], None]  # receives the number of bytes just read

SNIFF_BYTES = 8192
MAX_LINE_BYTES = 64 * 1024 * 1024
MAX_JSON_BYTES = 512 * 1024 * 1024
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class TextFile:
    """A regular file known to be non-empty text in one of the accepted encodings."""

    path: Path
    encoding: str  # utf-8 | utf-8-sig | utf-16
    size: int

    @property
    def name(self) -> str:
        return str(self.path)


def open_text(path: Path) -> TextFile:
    """Check that ``path`` is a readable, non-empty, non-binary text file; detect its encoding."""
    name = str(path)
    if not path.exists():
        raise ImportFormatError(name, None, "no such file or directory")
    if not path.is_file():
        raise ImportFormatError(name, None, "not a regular file")
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise ImportFormatError(name, None, f"cannot read: {exc.strerror or exc}") from None
    encoding = "utf-8"
    bom = b""
    for mark, enc in _BOMS:
        if head.startswith(mark):
            encoding, bom = enc, mark
            break
    body = head[len(bom) :]
    if not body.strip():
        if size <= len(head):
            raise ImportFormatError(name, None, "file is empty")
    if encoding == "utf-16":
        if (size - len(bom)) % 2:
            raise ImportFormatError(name, None, "truncated UTF-16 text (odd number of bytes)")
        try:
            sample = body.decode("utf-16-le" if bom == codecs.BOM_UTF16_LE else "utf-16-be")
        except UnicodeDecodeError:
            sample = ""  # a cut surrogate pair at the sniff boundary; checked when reading
        if "\x00" in sample:
            raise ImportFormatError(name, None, "binary file (NUL characters), not text")
    elif b"\x00" in body:
        offset = body.index(b"\x00") + len(bom)
        if _utf16_without_bom(body):
            reason = "looks like UTF-16 without a byte-order mark; save it with a BOM or as UTF-8"
            raise ImportFormatError(name, None, reason)
        raise ImportFormatError(
            name, None, f"binary file (NUL byte at offset {offset}), not text in UTF-8/UTF-16"
        )
    return TextFile(path, encoding, size)


def _utf16_without_bom(body: bytes) -> bool:
    """Mostly-ASCII UTF-16 has a NUL in every other byte."""
    sample = body[:4096]
    half = len(sample) // 2
    return half >= 4 and max(sample[0::2].count(0), sample[1::2].count(0)) >= 0.9 * half


class _Counting(io.RawIOBase):
    """A read-only byte stream that reports how much it has read (for progress bars)."""

    def __init__(self, raw: BinaryIO, progress: Progress | None) -> None:
        self._raw = raw
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if self._progress and n:
            self._progress(n)
        return n


def decode_error(src: TextFile, lineno: int, exc: UnicodeDecodeError) -> ImportFormatError:
    bad = exc.object[exc.start : exc.start + 1].hex()
    return ImportFormatError(
        src.name,
        lineno,
        f"undecodable bytes (0x{bad} at column {exc.start + 1}) in {src.encoding} text; "
        "save the file as UTF-8 or UTF-16 with BOM",
    )


def iter_lines(src: TextFile, progress: Progress | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, text)`` without line endings, reading one line at a time."""
    try:
        raw = src.path.open("rb")
    except OSError as exc:
        raise ImportFormatError(src.name, None, f"cannot read: {exc.strerror or exc}") from None
    with raw:
        stream = io.BufferedReader(_Counting(raw, progress), buffer_size=1 << 16)
        if src.encoding == "utf-16":
            yield from _iter_utf16(src, stream)
            return
        lineno = 0
        while True:
            data = stream.readline(MAX_LINE_BYTES + 1)
            if not data:
                return
            lineno += 1
            if len(data) > MAX_LINE_BYTES:
                raise ImportFormatError(src.name, lineno, "line longer than 64 MB")
            if lineno == 1 and data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8) :]
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise decode_error(src, lineno, exc) from None
            if "\x00" in text:
                raise ImportFormatError(src.name, lineno, "binary data (NUL byte) in a text file")
            yield lineno, text.rstrip("\r\n")


def _iter_utf16(src: TextFile, stream: io.BufferedReader) -> Iterator[tuple[int, str]]:
    text = io.TextIOWrapper(stream, encoding="utf-16", errors="strict", newline=None)
    lineno = 0
    while True:
        try:
            line = text.readline()
        except UnicodeDecodeError as exc:
            raise decode_error(src, lineno + 1, exc) from None
        if not line:
            return
        lineno += 1
        if "\x00" in line:
            raise ImportFormatError(src.name, lineno, "binary data (NUL character) in a text file")
        yield lineno, line.rstrip("\r\n")


def read_text(src: TextFile, progress: Progress | None = None) -> str:
    """The whole file as text (for JSON documents); decode errors name the line."""
    if src.size > MAX_JSON_BYTES:
        raise ImportFormatError(
            src.name, None, "JSON document larger than 512 MB; write it as JSONL instead"
        )
    try:
        data = src.path.read_bytes()
    except OSError as exc:
        raise ImportFormatError(src.name, None, f"cannot read: {exc.strerror or exc}") from None
    if progress:
        progress(len(data))
    try:
        text = data.decode(src.encoding)
    except UnicodeDecodeError as exc:
        lineno = data.count(b"\n", 0, exc.start) + 1
        raise decode_error(src, lineno, exc) from None
    if "\x00" in text:
        raise ImportFormatError(src.name, None, "binary data (NUL character) in a text file")
    return text.lstrip("\ufeff")


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_NUL_ESCAPE = re.compile(r"\\u0000")


def parse_json(text: str, name: str, line_offset: int = 0) -> Any:
    """``json.loads`` whose failures are ImportFormatErrors naming line and column."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{exc.lineno + line_offset}:{exc.colno}"
        # Unterminated strings and errors at the very end both mean the data stops early.
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            raise ImportFormatError(
                name, where, "truncated JSON (unexpected end of data)"
            ) from None
        raise ImportFormatError(name, where, f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise ImportFormatError(name, line_offset or None, "JSON nested too deeply") from None
    except ValueError as exc:  # e.g. integers longer than Python's digit limit
        raise ImportFormatError(name, line_offset or None, f"invalid JSON: {exc}") from None
    check_escapes(text, value, name, line_offset or None)
    return value


def check_escapes(text: str, value: Any, name: str, where: str | int | None) -> None:
    """Refuse what JSON escapes can smuggle in and no text file can hold: unpaired UTF-16
    surrogates (no database can store them) and NUL characters (Postgres refuses them)."""
    if _NUL_ESCAPE.search(text) and _has_nul(value):
        raise ImportFormatError(name, where, "NUL character (\\u0000) in a string")
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            reason = "unpaired surrogate escape (\\ud800-\\udfff) in a string; not valid Unicode"
            raise ImportFormatError(name, where, reason) from None
        except RecursionError:
            raise ImportFormatError(name, where, "JSON nested too deeply") from None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def load_json(src: TextFile, progress: Progress | None = None) -> Any:
    return parse_json(read_text(src, progress), src.name)


def head_text(src: TextFile, n_bytes: int = 65536) -> str:
    """The decoded start of a file for format detection (undecodable bytes replaced)."""
    with src.path.open("rb") as fh:
        data = fh.read(n_bytes)
    return data.decode(src.encoding, errors="replace").lstrip("\ufeff")


def expand(path: Path, pattern: str = "*") -> list[Path]:
    """A file stays itself; a folder becomes its matching regular files, sorted by name."""
    if path.is_dir():
        return sorted(p for p in path.glob(pattern) if p.is_file())
    return [path]


def json_path(parts: tuple[str | int, ...]) -> str:
    """``("x", 3, "content")`` -> ``$.x[3].content`` (where a JSON error is)."""
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p.isidentifier():
            out += f".{p}"
        else:
            out += f"[{json.dumps(p, ensure_ascii=False)}]"
    return out


def type_name(value: Any) -> str:
    """JSON's own names for Python values, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def hash_into(src: TextFile, digest: Any) -> None:
    """Feed the file's bytes to ``digest`` a megabyte at a time (run fingerprints)."""
    try:
        with src.path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ImportFormatError(src.name, None, f"cannot read: {exc.strerror or exc}") from None
