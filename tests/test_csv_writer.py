"""The streaming CSV writer used for link outputs: what pandas reads back is the frame, with
formula-like text neutralised, NaN as empty, booleans true/false; chunking changes nothing."""

import io
import os

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from profiling.export import neutralise, write_csv

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=80, deadline=None)
@given(words=st.lists(text, min_size=1, max_size=40), data=st.data(),
       chunk=st.integers(1, 7))
def test_write_csv_round_trips_through_pandas(tmp_path_factory, words, data, chunk):
    n = len(words)
    floats = data.draw(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=False,
                                                     width=64), st.just(float("nan"))),
                                min_size=n, max_size=n))
    flags = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    counts = data.draw(st.lists(st.integers(-10**12, 10**12), min_size=n, max_size=n))
    frame = pd.DataFrame({"name": pd.Series(words, dtype=object), "score": floats,
                          "flag": flags, "count": counts})
    path = tmp_path_factory.mktemp("csv") / "out.csv"
    write_csv(path, frame, chunk=chunk)
    assert os.stat(path).st_mode & 0o777 == 0o600
    raw = path.read_bytes().decode("utf-8")
    back = pd.read_csv(io.StringIO(raw), dtype=str, keep_default_na=False)
    assert len(back) == n
    assert back["name"].tolist() == [neutralise(w) for w in words]
    expected = ["" if v != v else "%.10g" % v for v in floats]
    assert back["score"].tolist() == expected
    assert back["flag"].tolist() == ["true" if f else "false" for f in flags]
    assert back["count"].tolist() == [str(c) for c in counts]
    # the same bytes whatever the chunk size
    other = path.with_name("whole.csv")
    write_csv(other, frame, chunk=10**6)
    assert other.read_bytes() == path.read_bytes()


def test_write_csv_neutralises_formulas_but_not_numbers(tmp_path):
    frame = pd.DataFrame({"a": ["=HYPERLINK(\"x\")", "-3.5", "+44 20", "@SUM(A1)", "plain, text"],
                          "b": [1.0, np.nan, 2.5, 0.1, 3.0]})
    write_csv(tmp_path / "f.csv", frame)
    lines = (tmp_path / "f.csv").read_text().splitlines()
    assert lines == ["a,b", "\"'=HYPERLINK(\"\"x\"\")\",1", "-3.5,", "'+44 20,2.5", "'@SUM(A1),0.1",
                     "\"plain, text\",3"]
