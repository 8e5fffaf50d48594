"""Fuzzing exports: whatever the bytes, ingest ends in a clear error or accounts for every row.

The default run tries a few hundred generated exports; ``pytest -m slow tests/test_fuzz.py``
runs 10,000 and prints the tally.
"""

import csv
import io
import random
import string
import tempfile
from pathlib import Path

import pytest

from profiling.errors import ProfilingError
from profiling.ingest import ingest

from .conftest import AS_OF, HEADER, ROWS

NASTY = ['=cmd|" /C calc"!A0', "+1+1", "-2+3", "@SUM(A1)", '<script>alert("x")</script>',
         "</td><img src=x onerror=alert(1)>", "'; DROP TABLE exhibits;--", "\u202egnp.exe",
         "NaN", "inf", "-0", "1e308", "1e-400", "９９", "٣", "", " ", "\t", '"', '""', ",", ";",
         "<LOQ", "trace", "<1%", "120%", "-5 g", "0", "abc mg", "£", "3 rocks", "2025-02-31",
         "31/12/9999", "00/00/0000"]


def records_in(data: bytes) -> int | None:
    """Independent count of data records (not blank lines) by Python's csv module, or None if
    the bytes are not a text CSV that module reads."""
    for enc in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        return None
    if "\x00" in text:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    first = text.split("\n", 1)[0]
    delim = max((",", ";", "\t"), key=lambda d: (first.count(d), -(",;\t".index(d))))
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True))
    except csv.Error:
        return None
    return sum(1 for r in rows[1:] if r and not (len(r) == 1 and r[0] == ""))


def mutate(rng: random.Random) -> bytes:
    """One generated export: a valid one, mangled in one to three ways."""
    rows = list(ROWS)
    header = HEADER
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(10)
        if kind == 0:     # a nasty value in a random cell
            r = rng.randrange(len(rows))
            cells = rows[r].split(",")
            cells[rng.randrange(len(cells))] = '"' + rng.choice(NASTY).replace('"', '""') + '"'
            rows[r] = ",".join(cells)
        elif kind == 1:   # a huge cell
            rows[rng.randrange(len(rows))] += "," + "x" * rng.choice([10_000, 1_000_000])
        elif kind == 2:   # random printable junk row
            rows.insert(rng.randrange(len(rows) + 1),
                        "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 80))))
        elif kind == 3:   # duplicate a row
            rows.append(rng.choice(rows))
        elif kind == 4:   # drop cells from a row
            r = rng.randrange(len(rows))
            rows[r] = ",".join(rows[r].split(",")[: rng.randint(0, 5)])
        elif kind == 5:   # HTML/JS in the header
            header = header.replace("Notes", "<b onmouseover=alert(1)>Notes</b>")
        elif kind == 6:   # blank lines
            rows.insert(rng.randrange(len(rows) + 1), "")
        elif kind == 7:   # many rows
            rows = rows * rng.randint(2, 50)
        elif kind == 8:   # other delimiter
            header, rows = header.replace(",", ";"), [r.replace(",", ";") for r in rows]
        else:
            pass
    text = "\n".join([header, *rows]) + "\n"
    encoding = rng.choice(["utf-8", "utf-8-sig", "cp1252"])
    data = text.encode(encoding, errors="replace")
    cut = rng.random()
    if cut < 0.1:
        data = data[: rng.randrange(len(data) + 1)]                 # truncation
    elif cut < 0.15:
        pos = rng.randrange(len(data) + 1)
        data = data[:pos] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + data[pos:]
    elif cut < 0.18:
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))   # random bytes
    return data


def fuzz(n: int, seed: int) -> dict:
    rng = random.Random(seed)
    tally = {"exports": 0, "refused": 0, "ingested": 0, "rows": 0, "unaccounted": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(n):
            data = mutate(rng)
            path = Path(tmp) / f"f{k}.csv"
            path.write_bytes(data)
            tally["exports"] += 1
            try:
                report = ingest([path], Path(tmp) / f"lib{k}.h5", quarantine=Path(tmp) / "q.csv",
                                as_of=AS_OF)
            except ProfilingError as err:
                assert str(err) and "\n" not in str(err).strip(), repr(err)
                tally["refused"] += 1
                continue
            tally["ingested"] += 1
            assert report.read == report.accepted + report.quarantined + report.duplicates
            expected = records_in(data)
            if expected is not None:
                tally["rows"] += expected
                tally["unaccounted"] += abs(expected - report.read)
            for f in Path(tmp).glob(f"lib{k}.h5*"):
                f.unlink()
    return tally


def test_fuzzed_exports_never_crash_or_lose_rows():
    tally = fuzz(300, seed=1)
    print("fuzz tally:", tally)
    assert tally["unaccounted"] == 0
    assert tally["ingested"] > 100 and tally["refused"] > 5


@pytest.mark.slow
def test_ten_thousand_fuzzed_exports():
    tally = fuzz(10_000, seed=2)
    print("fuzz tally:", tally)
    assert tally["exports"] == 10_000 and tally["unaccounted"] == 0
