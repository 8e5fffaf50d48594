"""Readers: delimiters, encodings, XLSX, line numbers, and files that are not exports."""

import zipfile

import numpy as np
import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiling.errors import ExportFormatError, MappingError
from profiling.ingest.mapping import Mapping, load_mapping, plan_columns, split_unit
from profiling.ingest.readers import read_export

from .conftest import HEADER, ROWS, write_export


@pytest.mark.parametrize("delim", [",", ";", "\t"])
def test_delimiters(tmp_path, delim):
    path = tmp_path / "e.csv"
    path.write_text(f"exhibit_id{delim}weight_before_g{delim}purity\nA1{delim}1.5 g{delim}34%\n"
                    f"A2{delim}\"0,23\"{delim}0.4\n")
    t = read_export(path)
    assert t.headers == ["exhibit_id", "weight_before_g", "purity"]
    assert t.cells.values.tolist() == [["A1", "1.5 g", "34%"], ["A2", "0,23", "0.4"]]
    assert t.lines.tolist() == [2, 3]


@pytest.mark.parametrize("encoding,bom", [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"),
                                          ("cp1252", b""), ("utf-16", b"")])
def test_encodings(tmp_path, encoding, bom):
    path = tmp_path / "e.csv"
    text = "exhibit_id,weight_before_g,price_gbp,notes\nA1,1 g,£20,café\n"
    path.write_bytes(bom + text.encode(encoding))
    t = read_export(path)
    assert t.headers[0] == "exhibit_id"
    assert t.cells.iloc[0].tolist() == ["A1", "1 g", "£20", "café"]


def test_crlf_and_multiline_cells_keep_physical_line_numbers(tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes(b'exhibit_id,weight_before_g,notes\r\nA1,1,"two\r\nlines"\r\n\r\nA2,2,x\r\n')
    t = read_export(path)
    assert t.cells[0].tolist() == ["A1", "A2"]
    assert t.lines.tolist() == [2, 5]      # A2 is on line 5: the note spans 2-3, line 4 is blank
    assert t.blank_lines == 1


def test_short_and_long_rows_are_marked_not_dropped(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("exhibit_id,weight_before_g,purity\nA1,1\nA2,2,3%,extra\nA3,3,4%\n")
    t = read_export(path)
    assert t.n_rows == 3
    assert t.broken == {0: "row:short (2 fields, header has 3)", 1: "row:long (4 fields, header has 3)"}
    assert t.extra.iloc[1].tolist() == ["extra"]


@pytest.mark.parametrize("content,message", [
    (b"", "is empty"),
    (b"   \n\n", "is empty"),
    (b"\x00\x01\x02binary\x00", "binary"),
    (b"exhibit_id,weight\nA1,\"unterminated\n", "truncated"),
    (b"exhibit_id,weight\nA1,\x81\x8d\x8f\n", "neither UTF-8 nor Windows-1252"),
    (b"PK\x03\x04garbage that is not a zip", "cannot be opened"),
])
def test_not_exports_fail_with_one_clear_message(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ExportFormatError, match=message):
        read_export(path)


def test_truncated_xlsx(tmp_path):
    good = tmp_path / "good.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["exhibit_id", "weight_before_g"])
    wb.active.append(["A1", 1.5])
    wb.save(good)
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ExportFormatError, match="truncated or damaged"):
        read_export(bad)


def test_xlsx_cells_become_text(tmp_path):
    import datetime as dt

    path = tmp_path / "e.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["exhibit_id", "weight_before_g", "seized_on", "purity", "rock_count"])
    ws.append(["A1", 0.23, dt.datetime(2025, 2, 3), "34%", 3])
    ws.append([])
    ws.append(["A2", "230 mg", "03/02/2025", 0.5, None])
    wb.save(path)
    t = read_export(path)
    assert t.cells.values.tolist() == [["A1", "0.23", "2025-02-03", "34%", "3"],
                                       ["A2", "230 mg", "03/02/2025", "0.5", ""]]
    assert t.lines.tolist() == [2, 4]


def test_spec_mapping_file(tmp_path):
    mapping = tmp_path / "m.toml"
    mapping.write_text('''
[columns]
exhibit_id = "Exhibit No."
weight_before_g = "Gross Wt Before Analysis"
purity = "Purity (%)"

[profile]
"Peak Area: Tropacocaine" = "tropacocaine"

[options]
date_order = "dmy"
weight_unit = "g"
purity_unit = "percent"
''')
    m = load_mapping(mapping)
    headers = ["Exhibit No.", "Gross Wt Before Analysis", "Purity (%)", "Peak Area: Tropacocaine",
               "Officer"]
    plan = plan_columns(headers, m, "e.csv")
    assert plan.fields == {"exhibit_id": 0, "weight_before_g": 1, "purity": 2}
    assert plan.profile == [(3, "tropacocaine")]
    assert plan.attributes == [(4, "officer")]
    assert plan.units["purity"] == "%"
    assert m.purity_unit == "percent" and m.date_order == "dmy"


@pytest.mark.parametrize("body,message", [
    ("[columns]\nexhibit_no = 'X'\n", "unknown field"),
    ("[options]\ndate_order = 'dym'\n", "date_order"),
    ("[options]\nweight_unit = 'stone'\n", "weight_unit"),
    ("[options]\npurity_unit = 'ppm'\n", "purity_unit"),
    ("not toml = = =", "not valid TOML"),
    ("[colums]\n", "unknown section"),
])
def test_bad_mapping_files(tmp_path, body, message):
    path = tmp_path / "m.toml"
    path.write_text(body)
    with pytest.raises(MappingError, match=message):
        load_mapping(path)


def test_header_synonyms_and_units():
    headers = HEADER.split(",")
    plan = plan_columns(headers, Mapping(), "e.csv")
    assert plan.fields["exhibit_id"] == 0 and plan.fields["weight_before_g"] == 8
    assert plan.units["weight_before_g"] == "mg"
    assert [c for _, c in plan.profile] == ["tropacocaine", "norcocaine"]
    assert plan.attributes == [(17, "notes")]
    assert split_unit("Purity %") == ("purity", "%")


def test_missing_required_column_names_the_headers():
    with pytest.raises(MappingError, match="weight_before_g.*'Exhibit', 'Colour'"):
        plan_columns(["Exhibit", "Colour"], Mapping(), "e.csv")


def test_ambiguous_columns_are_refused():
    with pytest.raises(MappingError, match="all look like weight_before_g"):
        plan_columns(["exhibit_id", "Weight before", "Weight before analysis"], Mapping(), "e.csv")


TEXT_CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                    max_size=12)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(TEXT_CELL, min_size=1, max_size=7), max_size=8),
       st.sampled_from([",", ";", "\t"]))
def test_any_table_written_by_the_csv_module_reads_back_cell_for_cell(tmp_path_factory, rows, delim):
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delim, lineterminator="\r\n")  # quotes cells with CR or LF
    w.writerow(["exhibit_id", "weight_before_g", "c", "d", "e"])
    w.writerows(rows)
    path = tmp_path_factory.mktemp("fz") / "e.csv"
    path.write_bytes(buf.getvalue().encode("utf-8"))
    table = read_export(path)
    expected = [r for r in rows if r != [""]]          # a lone empty field is a blank line
    assert table.n_rows == len(expected)
    for i, r in enumerate(expected):
        cells = table.cells.iloc[i].tolist()
        extra = table.extra.iloc[i].tolist() if table.extra is not None else []
        got = (cells + extra)[: max(len(r), 5)]
        r = [c.replace("\r\n", "\n").replace("\r", "\n") for c in r]   # one rule for line ends
        assert got == r + [""] * (len(got) - len(r))
        assert (i in table.broken) == (len(r) != 5)


def test_zip_that_is_not_a_workbook(tmp_path):
    path = tmp_path / "e.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ExportFormatError):
        read_export(path)


def test_line_numbers_for_every_row(tmp_path):
    path = write_export(tmp_path / "e.csv")
    t = read_export(path)
    assert t.lines.tolist() == list(range(2, 2 + len(ROWS)))
    assert np.array_equal(t.cells[0].to_numpy(), np.array([r.split(",")[0] for r in ROWS], dtype=object))
