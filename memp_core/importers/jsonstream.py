"""The top-level members of a JSON document, one at a time, in bounded memory.

A JSON log is mostly one large array (or object) of independent records: conversations,
games, transcripts. Loading it whole costs several times its size (the bytes, the text,
then the Python objects: a 79 MB chat log took 300 MB to preview). This reader decodes the
file in chunks and hands out one top-level member at a time, so memory is bounded by the
largest member. Its errors are :func:`~memp_core.importers.source.parse_json`'s: line and
column, truncated data, NUL characters, unpaired surrogates, nesting too deep.

A document whose top level is not an array or an object is one value: read it with
:func:`~memp_core.importers.source.load_json`.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any, Literal

from memp_core.errors import ImportFormatError
from memp_core.importers.source import (
    MAX_JSON_BYTES,
    Progress,
    TextFile,
    check_escapes,
    decode_error,
    head_text,
)

CHUNK = 1 << 20
TAIL = 64  # a number or literal this close to the end of the buffer may be cut short
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
Kind = Literal["array", "object"]


def json_kind(src: TextFile) -> Kind | None:
    """``array`` or ``object`` from the document's first character; None for anything else."""
    start = head_text(src, 4096).lstrip()[:1]
    return "array" if start == "[" else "object" if start == "{" else None


def json_members(
    src: TextFile, progress: Progress | None = None, *, chunk: int = CHUNK
) -> Iterator[tuple[Any, Any]]:
    """``(index, value)`` of an array's elements or ``(key, value)`` of an object's members.

    ``chunk``: bytes read at a time (tests use tiny ones to cross every boundary)."""
    if src.size > MAX_JSON_BYTES:
        raise ImportFormatError(
            src.name, None, "JSON document larger than 512 MB; write it as JSONL instead"
        )
    reader = _Reader(src, progress, chunk)
    try:
        yield from reader.members()
    finally:
        reader.close()


class _Reader:
    def __init__(self, src: TextFile, progress: Progress | None, chunk: int) -> None:
        self.src = src
        self.chunk = chunk
        self.progress = progress
        self.fh = src.path.open("rb")
        self.decoder = codecs.getincrementaldecoder(src.encoding)(errors="strict")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line, self.col = 1, 1  # where buf[0] is in the file
        self.started = False

    def close(self) -> None:
        self.fh.close()

    # -- the buffer -----------------------------------------------------------------------

    def more(self, size: int = 0) -> bool:
        """Append the next chunk of text (dropping what was consumed); False at the end."""
        if self.eof:
            return False
        try:
            data = self.fh.read(size or self.chunk)
        except OSError as exc:
            raise ImportFormatError(self.src.name, None, f"cannot read: {exc}") from None
        if self.progress and data:
            self.progress(len(data))
        try:
            text = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise decode_error(self.src, self.where_line(len(self.buf)), exc) from None
        self.eof = not data
        if not self.started:
            text, self.started = text.lstrip("\ufeff"), True
        if "\x00" in text:
            reason = "binary data (NUL character) in a text file"
            raise ImportFormatError(self.src.name, None, reason)
        self._compact()
        self.buf += text
        return True

    def _compact(self) -> None:
        if not self.pos:
            return
        newlines = self.buf.count("\n", 0, self.pos)
        if newlines:
            self.line += newlines
            self.col = self.pos - self.buf.rfind("\n", 0, self.pos)
        else:
            self.col += self.pos
        self.buf, self.pos = self.buf[self.pos :], 0

    def where_line(self, i: int) -> int:
        return self.line + self.buf.count("\n", 0, i)

    def where(self, i: int) -> str:
        newlines = self.buf.count("\n", 0, i)
        col = i - self.buf.rfind("\n", 0, i) if newlines else self.col + i
        return f"{self.line + newlines}:{col}"

    def peek(self) -> str:
        """The next non-blank character ("" at the end of the file)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    # -- values ---------------------------------------------------------------------------

    def fail(self, i: int, reason: str) -> ImportFormatError:
        return ImportFormatError(self.src.name, self.where(i), reason)

    def truncated(self) -> ImportFormatError:
        return self.fail(len(self.buf), "truncated JSON (unexpected end of data)")

    def value(self) -> Any:
        """The JSON value at the current position (reading more until it is complete)."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                cut = exc.pos >= len(self.buf) - TAIL or exc.msg.startswith("Unterminated")
                if cut and self.more(max(self.chunk, len(self.buf))):
                    continue
                if exc.pos >= len(self.buf.rstrip()) or exc.msg.startswith("Unterminated"):
                    raise self.truncated() from None
                raise self.fail(exc.pos, f"invalid JSON: {exc.msg}") from None
            except RecursionError:
                raise self.fail(self.pos, "JSON nested too deeply") from None
            except ValueError as exc:  # integers longer than Python's digit limit
                raise self.fail(self.pos, f"invalid JSON: {exc}") from None
            nxt = _WS.match(self.buf, end).end()  # type: ignore[union-attr]
            # A number or a literal cut by the chunk boundary parses short: read on.
            unsure = nxt >= len(self.buf) or (
                self.buf[nxt] not in ",]}:" and nxt > len(self.buf) - TAIL
            )
            if unsure and self.more(max(self.chunk, len(self.buf))):
                continue
            if "\\u" in self.buf[self.pos : end]:
                check_escapes(self.buf[self.pos : end], value, self.src.name, self.where(self.pos))
            self.pos = end
            return value

    def members(self) -> Iterator[tuple[Any, Any]]:
        start = self.peek()
        if start not in ("[", "{"):
            raise self.fail(self.pos, "expected a JSON array or object")
        closer = "]" if start == "[" else "}"
        self.pos += 1
        n = 0
        while True:
            ch = self.peek()
            if ch == "":
                raise self.truncated()
            if ch == closer and n == 0:
                self.pos += 1
                break
            if n:
                if ch == closer:
                    self.pos += 1
                    break
                if ch != ",":
                    raise self.fail(self.pos, "invalid JSON: Expecting ',' delimiter")
                self.pos += 1
                if self.peek() == "":
                    raise self.truncated()
            yield (self._key() if closer == "}" else n), self.value()
            n += 1
        if self.peek() != "":
            raise self.fail(self.pos, "invalid JSON: Extra data")

    def _key(self) -> str:
        if self.buf[self.pos] != '"':
            reason = "invalid JSON: Expecting property name enclosed in double quotes"
            raise self.fail(self.pos, reason)
        key = self.value()
        ch = self.peek()
        if ch == "":
            raise self.truncated()
        if ch != ":":
            raise self.fail(self.pos, "invalid JSON: Expecting ':' delimiter")
        self.pos += 1
        if self.peek() == "":
            raise self.truncated()
        return str(key)
