"""Readers: turn a lab export file (CSV or XLSX) into a table of raw text cells.

One reader per format. Both give a :class:`RawTable`: the header, every data row as strings
exactly as written, each row's physical line (CSV) or sheet row (XLSX), and the rows whose field
count disagrees with the header (a truncated or broken row is quarantined, never dropped).

Anything that is not an export at all raises :class:`~profiling.errors.ExportFormatError` with
one sentence saying why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from profiling._native.parse import scan_records
from profiling.errors import ExportFormatError

_DELIMITERS = (",", ";", "\t")


@dataclass
class RawTable:
    source: Path
    sha256: str
    headers: list[str]
    cells: pd.DataFrame            # object dtype, str cells, columns 0..len(headers)-1
    lines: np.ndarray              # int64, physical line (CSV) or sheet row (XLSX) per row
    broken: dict[int, str] = field(default_factory=dict)  # row position -> reason
    encoding: str = "utf-8"
    blank_lines: int = 0           # wholly blank lines between rows, ignored (not rows)
    extra: pd.DataFrame | None = None  # cells beyond the header's width (long rows)

    @property
    def n_rows(self) -> int:
        return len(self.cells)


def read_export(path: str | Path) -> RawTable:
    """Read a CSV (comma, semicolon or tab; UTF-8 with or without BOM, or Windows-1252) or an
    XLSX export. Raises ExportFormatError for files that are not exports."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ExportFormatError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise ExportFormatError(f"{path} is a directory, not an export file.") from None
    except PermissionError:
        raise ExportFormatError(f"{path}: permission denied.") from None
    sha = hashlib.sha256(data).hexdigest()
    if not data.strip():
        raise ExportFormatError(f"{path.name} is empty: there is no header and no data.")
    if data[:4] == b"PK\x03\x04":
        return _read_xlsx(path, data, sha)
    return _read_csv(path, data, sha)


# --- CSV -------------------------------------------------------------------------------------


def _decode(path: Path, data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        enc, body = "utf-8-sig", data
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        enc, body = "utf-16", data
    else:
        enc, body = "utf-8", data
    if enc == "utf-8" and b"\x00" in data[:65536]:
        raise ExportFormatError(
            f"{path.name} is a binary file (it contains NUL bytes), not a CSV or XLSX export."
        )
    try:
        return body.decode(enc), enc
    except UnicodeDecodeError as err:
        if enc != "utf-8":
            raise ExportFormatError(
                f"{path.name} starts with a {enc} byte-order mark but is not valid {enc} "
                f"(byte {err.start})."
            ) from None
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as err:
        raise ExportFormatError(
            f"{path.name} is neither UTF-8 nor Windows-1252 text (undecodable byte 0x"
            f"{data[err.start]:02x} at offset {err.start}); save the export as CSV UTF-8."
        ) from None


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: (counts[d], -_DELIMITERS.index(d)))
    return best if counts[best] else ","


def _read_csv(path: Path, data: bytes, sha: str) -> RawTable:
    text, encoding = _decode(path, data)
    if "\x00" in text:
        raise ExportFormatError(f"{path.name} contains NUL characters: not a text export.")
    text = text.lstrip("\ufeff")
    if "\r" in text:
        # Windows (CRLF) and old Mac (CR) line ends become LF; a lone CR inside a quoted cell
        # becomes LF too (readers disagree about bare CRs, so one rule for all).
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        line_ends_changed = True
    else:
        line_ends_changed = False
    first_line = text.split("\n", 1)[0]
    delim = _sniff_delimiter(first_line)
    if encoding == "utf-8" and not line_ends_changed:
        utf8 = data          # already UTF-8 without a BOM or CRs: no need to encode again
    else:
        utf8 = text.encode("utf-8")
    lines, n_fields, open_quote = scan_records(np.frombuffer(utf8, dtype=np.uint8), ord(delim))
    if open_quote:
        raise ExportFormatError(
            f"{path.name} is truncated or damaged: a quoted field opened on line {open_quote} "
            "never closes."
        )
    if len(lines) == 0:
        raise ExportFormatError(f"{path.name} is empty: there is no header and no data.")
    width = int(n_fields[0])
    try:
        frame = pd.read_csv(
            io.BytesIO(utf8), sep=delim, header=None, dtype=object, na_filter=False,
            keep_default_na=False, skip_blank_lines=False, engine="c", quotechar='"',
            doublequote=True, encoding="utf-8", names=range(max(int(n_fields.max()), width)),
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise ExportFormatError(f"{path.name} cannot be parsed as CSV: {err}") from None
    if len(frame) != len(lines):
        raise ExportFormatError(
            f"{path.name} cannot be read consistently as CSV ({len(frame)} rows parsed, "
            f"{len(lines)} records found); check its quoting."
        )
    headers = [str(h) for h in frame.iloc[0, :width].tolist()]
    if not any(h.strip() for h in headers):
        raise ExportFormatError(f"{path.name} has an empty header line.")
    body = frame.iloc[1:]
    body_lines = lines[1:]
    body_fields = n_fields[1:]
    # wholly blank lines are not rows
    blank = body_fields == 1      # a wholly blank line has one (empty) field
    one = np.flatnonzero(blank)
    blank[one] = body.iloc[one].apply(lambda r: all(c == "" for c in r), axis=1).to_numpy(dtype=bool) \
        if len(one) else blank[one]
    keep = ~blank
    body = body.loc[keep]
    body_lines = body_lines[keep]
    body_fields = body_fields[keep]
    broken: dict[int, str] = {}
    bad = np.flatnonzero(body_fields != width)
    for pos in bad:
        nf = int(body_fields[pos])
        if nf < width:
            broken[int(pos)] = f"row:short ({nf} fields, header has {width})"
        else:
            broken[int(pos)] = f"row:long ({nf} fields, header has {width})"
    extra_cells = body.iloc[:, width:]
    cells = body.iloc[:, :width].reset_index(drop=True)
    cells.columns = range(width)
    extra = extra_cells.reset_index(drop=True) if extra_cells.shape[1] else None
    return RawTable(path, sha, headers, cells, body_lines.astype(np.int64), broken, encoding,
                    int(blank.sum()), extra)


# --- XLSX ------------------------------------------------------------------------------------


def _xlsx_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return str(value)


def _read_xlsx(path: Path, data: bytes, sha: str) -> RawTable:
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as err:
        raise ExportFormatError(
            f"{path.name} looks like a ZIP/XLSX file but cannot be opened ({err}); it may be "
            "truncated or damaged."
        ) from None
    except Exception as err:  # openpyxl raises many types for damaged workbooks
        raise ExportFormatError(f"{path.name}: damaged XLSX workbook ({type(err).__name__}: {err}).") from None
    try:
        sheet = next((ws for ws in book.worksheets if ws.max_row and ws.max_row > 0), None)
        if sheet is None:
            raise ExportFormatError(f"{path.name} has no worksheet with data.")
        rows: list[list[str]] = []
        row_numbers: list[int] = []
        header: list[str] | None = None
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            texts = [_xlsx_text(v) for v in values]
            while texts and texts[-1] == "":
                texts.pop()
            if header is None:
                if texts:
                    header = texts
                continue
            if not texts:
                continue
            rows.append(texts)
            row_numbers.append(number)
    except ExportFormatError:
        raise
    except Exception as err:
        raise ExportFormatError(f"{path.name}: damaged XLSX worksheet ({type(err).__name__}: {err}).") from None
    finally:
        book.close()
    if header is None:
        raise ExportFormatError(f"{path.name} has no header row.")
    width = max([len(header)] + [len(r) for r in rows])
    headers = header + [f"column_{i + 1}" for i in range(len(header), width)]
    padded = [r + [""] * (width - len(r)) for r in rows]
    cells = pd.DataFrame(padded, columns=range(width), dtype=object) if padded else pd.DataFrame(
        {i: pd.Series([], dtype=object) for i in range(width)})
    return RawTable(path, sha, headers, cells, np.asarray(row_numbers, dtype=np.int64), {}, "xlsx")
