"""Give Polars' readers valid UTF-8 with `\n` line ends, whatever encoding a list file arrived in.

Polars reads only UTF-8, and reads it fast, checking the bytes as it parses. So a file whose head
is UTF-8 goes straight to the reader, with no checking pass of ours; only when the reader reports
bytes that are not UTF-8 (`NotUtf8Error`) is the file transcoded. The rare files that need it
(UTF-16 with a BOM, Latin-1 or a mix, classic-Mac CR line ends) are transcoded chunk by chunk
into a temporary UTF-8 copy, so memory stays bounded by the chunk size, not the file size.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, TypeVar

from engine.errors import InputError

HEAD_BYTES: Final = 64 * 1024  # enough lines to sniff a format, a delimiter and a header
# 4 MiB per read: large enough that Python's loop overhead vanishes next to the C decoder,
# small enough that a transcoding pass never holds more than a few chunks in memory.
CHUNK_BYTES: Final = 4 * 1024 * 1024
# Past this, a first line is no header anyway: read_head(whole_first_line=True) stops.
FIRST_LINE_MAX_BYTES: Final = 64 * 1024 * 1024
UTF8_BOM: Final = codecs.BOM_UTF8
UTF16_BOMS: Final = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)

Parsed = TypeVar("Parsed")


class NotUtf8Error(Exception):
    """Raised by a reader that met bytes which are not UTF-8, so that the file gets transcoded."""


@dataclass(frozen=True)
class TextEncoding:
    name: str  # what the source was: "utf-8", "utf-8-sig", "utf-16", "latin-1" or "mixed"
    warnings: tuple[str, ...]


def read_head(path: Path, *, whole_first_line: bool = False) -> bytes:
    """The first HEAD_BYTES; with `whole_first_line`, on to the end of a longer first line.

    A CSV header of thousands of columns outgrows the head: cut there, it lost its header and
    every column past the cut (found by tests/engine/test_fuzz_inputs.py).
    """
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES)
        if not whole_first_line or b"\n" in head or b"\r" in head:
            return head
        parts, size = [head], len(head)
        while size < FIRST_LINE_MAX_BYTES and (chunk := file.read(CHUNK_BYTES)):
            parts.append(chunk)
            size += len(chunk)
            if b"\n" in chunk or b"\r" in chunk:
                break
        return b"".join(parts)


def holds_no_text(head: bytes) -> bool:
    """An empty file, or one holding a byte-order mark alone (how Notepad saves an empty file)."""
    return head in (b"", UTF8_BOM, *UTF16_BOMS)


def decode_head(head: bytes) -> str:
    """The head as text for sniffing: BOM honoured and dropped, undecodable bytes replaced."""
    if head.startswith(UTF16_BOMS):
        return head.decode("utf-16", errors="replace")
    return head.removeprefix(UTF8_BOM).decode("utf-8", errors="replace")


def is_valid_utf8(path: Path) -> bool:
    """A streamed check, for readers that must know before falling back to a slower parser."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as file:
        try:
            while chunk := file.read(CHUNK_BYTES):
                if chunk.isascii() and not decoder.getstate()[0]:
                    continue  # ASCII is UTF-8, unless it follows half a character
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def read_as_utf8(path: Path, read: Callable[[Path], Parsed]) -> tuple[Parsed, TextEncoding]:
    """`read` a UTF-8 view of `path`: the file itself, or a temporary transcoded copy."""
    head = read_head(path)
    cr_line_ends = has_cr_line_ends(path, head)
    if head.startswith(UTF16_BOMS):
        with temporary_copy() as (copy, sink):
            try:
                _transcode_utf16(path, sink, cr_line_ends)
            except UnicodeDecodeError as error:
                problem = "not valid UTF-16 although it starts with a UTF-16 byte-order mark"
                raise InputError(problem, path=path) from error
            sink.close()
            return read(copy), TextEncoding("utf-16", ())
    bom = "utf-8-sig" if head.startswith(UTF8_BOM) else "utf-8"
    if not cr_line_ends and _is_utf8_start(head):
        with contextlib.suppress(NotUtf8Error):
            return read(path), TextEncoding(bom, ())
    with temporary_copy() as (copy, sink):
        first_bad_line, bad_lines, saw_utf8 = _transcode_per_line(path, sink, cr_line_ends)
        sink.close()
        if not bad_lines:
            return read(copy), TextEncoding(bom, ())
        warning = (
            f"{path}: line {first_bad_line} is not valid UTF-8; "
            f"{bad_lines} such line{'s' if bad_lines > 1 else ''} read as Latin-1"
        )
        return read(copy), TextEncoding("mixed" if saw_utf8 else "latin-1", (warning,))


def has_cr_line_ends(path: Path, head: bytes) -> bool:
    """Whether lines end in a bare CR (classic Mac OS): CRs and no LF in the head.

    A head without either is one line cut short: the file is read on to that line's end, or a
    first line longer than the head hid the CRs and the file was read as one record (found by
    tests/engine/test_fuzz_inputs.py).
    """
    text_head = decode_head(head)
    if "\r" in text_head or "\n" in text_head or len(head) < HEAD_BYTES:
        return "\r" in text_head and "\n" not in text_head
    encoding = "utf-16" if head.startswith(UTF16_BOMS) else "utf-8-sig"
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            text = decoder.decode(chunk)
            line_end = min((at for at in (text.find("\r"), text.find("\n")) if at >= 0), default=-1)
            if line_end >= 0:
                if text[line_end] == "\n":
                    return False
                after = text[line_end + 1 : line_end + 2] or decoder.decode(file.read(4))[:1]
                return after != "\n"
    return False


def _is_utf8_start(head: bytes) -> bool:
    """Whether `head` is UTF-8, allowing a character cut in two at its end."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return False
    return True


@contextlib.contextmanager
def temporary_copy() -> Iterator[tuple[Path, BinaryIO]]:
    """A temporary file to rewrite a list into, removed on exit; close the sink before reading."""
    descriptor, name = tempfile.mkstemp(prefix="mailsift-", suffix=".utf8")
    copy = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as sink:
            yield copy, sink
    finally:
        copy.unlink(missing_ok=True)


def _transcode_utf16(path: Path, sink: BinaryIO, cr_line_ends: bool) -> None:
    """UTF-16 with a BOM (Excel's "Unicode text") to UTF-8; the decoder consumes the BOM."""
    decoder = codecs.getincrementaldecoder("utf-16")()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            text = decoder.decode(chunk)
            sink.write((_cr_to_lf(text) if cr_line_ends else text).encode())
        sink.write(decoder.decode(b"", final=True).encode())


def _transcode_per_line(path: Path, sink: BinaryIO, cr_line_ends: bool) -> tuple[int, int, bool]:
    """Copy as UTF-8, decoding each line that is not valid UTF-8 as Latin-1.

    A file assembled from several exports mixes encodings line by line, so the decision is made
    per line, not per file. Returns (first bad line, 1-based; bad line count; whether any valid
    line held non-ASCII UTF-8, which makes the file "mixed" rather than "latin-1").
    """
    eol = b"\r" if cr_line_ends else b"\n"
    first_bad_line, bad_lines, saw_utf8, lines_before = 0, 0, False, 0
    with path.open("rb") as file:
        for block in _line_blocks(file, eol, strip_bom=True):
            try:
                texts = [block.decode("utf-8")]
                saw_utf8 = saw_utf8 or not block.isascii()
            except UnicodeDecodeError:
                texts = []
                for number, line in enumerate(block.split(eol), start=lines_before + 1):
                    try:
                        texts.append(line.decode("utf-8"))
                        saw_utf8 = saw_utf8 or not line.isascii()
                    except UnicodeDecodeError:
                        texts.append(line.decode("latin-1"))
                        first_bad_line = first_bad_line or number
                        bad_lines += 1
            text = eol.decode().join(texts)
            sink.write((_cr_to_lf(text) if cr_line_ends else text).encode())
            lines_before += block.count(eol)
    return first_bad_line, bad_lines, saw_utf8


def _cr_to_lf(text: str) -> str:
    """Classic-Mac line ends to `\\n`; a CRLF, should one appear after all, stays one line end."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _line_blocks(file: BinaryIO, eol: bytes, *, strip_bom: bool) -> Iterator[bytes]:
    """About CHUNK_BYTES of whole lines at a time; only the file's last block may lack an `eol`."""
    pending = bytearray()
    first = True
    while chunk := file.read(CHUNK_BYTES):
        if first and strip_bom:
            chunk = chunk.removeprefix(UTF8_BOM)
        first = False
        last_eol = chunk.rfind(eol)
        pending += chunk
        if last_eol >= 0:
            cut = len(pending) - len(chunk) + last_eol + 1
            yield bytes(pending[:cut])
            del pending[:cut]
    if pending:
        yield bytes(pending)
