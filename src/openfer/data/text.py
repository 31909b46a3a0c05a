"""Annotation text files: UTF-8 (a byte-order mark is accepted), or an error naming the place.

Annotation files come from many tools and operating systems; a stray Latin-1 byte must be an
error that says which file, which line and which byte, not a ``UnicodeDecodeError`` traceback.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..errors import DataFormatError


def read_text(path: str | Path) -> str:
    """The text of ``path`` decoded as UTF-8, or :class:`DataFormatError` with the line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except OSError as exc:
        raise DataFormatError(path, f"cannot read the file ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataFormatError(path, f"byte 0x{raw[exc.start]:02x} at offset {exc.start} is not "
                              "UTF-8 text", line=line,
                              hint="re-save the file as UTF-8") from None


def csv_lines(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of every row of a small CSV annotation file (blank rows too),
    read through :func:`read_text`; a row the csv module cannot parse is a
    :class:`DataFormatError` with its line."""
    path = Path(path)
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise DataFormatError(path, f"not a readable CSV ({exc})",
                              line=reader.line_num + 1) from None


def csv_records(path: str | Path, required: Sequence[str], *, hint: str,
                key: Callable[[str], str] = str.lower) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, {column: stripped value})`` for every non-blank row of a CSV file whose
    first line names its columns (names normalised by ``key``). An empty file, a ``required``
    column missing from the header (``hint`` says what is expected) or a row with another
    number of fields than the header is a :class:`DataFormatError` naming the line."""
    path = Path(path)
    rows = csv_lines(path)
    try:
        header = [key(c.strip()) for c in next(rows)[1]]
    except StopIteration:
        raise DataFormatError(path, "the file is empty", hint=hint) from None
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(path, f"the header has no column {missing[0]}", line=1, hint=hint)
    for line, row in rows:
        if not any(v.strip() for v in row):
            continue
        if len(row) != len(header):
            raise DataFormatError(path, f"expected {len(header)} fields, found {len(row)}",
                                  line=line)
        yield line, {c: v.strip() for c, v in zip(header, row)}
