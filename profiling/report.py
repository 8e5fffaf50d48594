"""Self-contained HTML pages: one renderer for every report (link, calibration, market …).

Every value that can come from an export goes through :func:`esc` (or :func:`table`, which
escapes every cell); charts are matplotlib figures embedded as base64 PNG, so a page is one file
an analyst can open, print or attach, with no network access.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import pandas as pd

from profiling.files import private_open

_STYLE = """
body{font-family:system-ui,Arial,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-top:.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0}.note{color:#555;font-size:.9em}.warn{color:#a00}td.nw{white-space:nowrap}
img{max-width:100%}
@media print{body{margin:0}h2{page-break-after:avoid}}
"""


def esc(value) -> str:
    """HTML-escape anything (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def cell_text(value) -> str:
    """A cell as text: lists joined with '; ', missing values empty, floats to 6 significant."""
    if isinstance(value, (list, tuple, set)):
        return "; ".join(cell_text(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {cell_text(v)}" for k, v in value.items())
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def table(frame: pd.DataFrame, max_rows: int = 500, nowrap=()) -> str:
    """An escaped HTML table; rows beyond ``max_rows`` are counted, not shown. Cells of the
    columns named in ``nowrap`` (dates, counts) never break across lines."""
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    keep_whole = set(nowrap)
    opens = ['<td class="nw">' if c in keep_whole else "<td>"
             for c in frame.columns]
    body = []
    for row in frame.head(max_rows).itertuples(index=False):
        body.append("<tr>" + "".join(f"{o}{esc(cell_text(v))}</td>" for o, v in zip(opens, row))
                    + "</tr>")
    more = (f'<p class="note">{len(frame) - max_rows} more rows are in the CSV outputs.</p>'
            if len(frame) > max_rows else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def figure(fig, alt: str) -> str:
    """A matplotlib figure as an embedded PNG (closed afterwards), in 256 colours: a chart has
    few, and the palette makes the page three to four times smaller than full colour."""
    import matplotlib.pyplot as plt
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    buf.seek(0)
    image = Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
    palette = image.getpalette()
    background = max(image.getcolors())[1]          # the octree averages white to 254: undo
    if min(palette[3 * background:3 * background + 3]) >= 248:
        palette[3 * background:3 * background + 3] = [255, 255, 255]
        image.putpalette(palette)
    out = io.BytesIO()
    image.save(out, format="PNG")
    data = base64.b64encode(out.getvalue()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """A whole page: ``sections`` are (heading, already-safe HTML body)."""
    parts = [(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
              f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"),
             f"<h1>{esc(title)}</h1>"]
    for heading, body in sections:
        anchor = esc(heading.lower().replace(" ", "-"))
        parts.append(f'<section id="{anchor}"><h2>{esc(heading)}</h2>{body}</section>')
    parts.append("</body></html>\n")
    return "".join(parts)


def write_page(path: str | Path, content: str) -> None:
    with private_open(path) as fh:
        fh.write(content)


def matplotlib_figure(width: float = 7, height: float = 3.5):
    """A figure on the non-interactive backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))
