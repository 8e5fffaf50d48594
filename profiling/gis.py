"""GIS export: GeoJSON maps (RFC 7946) that partners open in QGIS to see where chemical classes,
links and market figures concentrate, never where one exhibit was found.

Where an exhibit is (its *point*), first found of:

1. its own latitude/longitude (extra export columns named like ``latitude``/``longitude``);
2. its British National Grid easting/northing, converted from OSGB36 to WGS84;
3. its postcode district (or a full postcode's outward code) in
   ``reference_data/postcode_districts.csv``;
4. its area's centroid in ``reference_data/areas.csv``.

Features are aggregated by *place*: the exhibit's area (its force for ``--by force``; coarsened
in a redacted run) or, for an exhibit with no area, its postcode district or a grid cell (not in
a redacted run, where such exhibits are left off the map). A place is drawn at the mean of the
table centroids of the areas it holds, or, without any, at the mean of its exhibits' points
snapped to the grid of ``gis.toml`` — never at one exhibit's own coordinates. Column words, grid
and projection constants are in ``reference_data/gis.toml``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.errors import InputError
from profiling.ingest.vocabulary import load_toml, reference_path
from profiling.records import ATTRIBUTE_PREFIX

#: How an exhibit's point was found (``located_by`` counts in the summaries).
HOW = ("coordinates", "grid_reference", "postcode_district", "area")

_OUTWARD = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]?")
_FULL_POSTCODE = re.compile(r"([A-Z]{1,2}[0-9][A-Z0-9]?)\s*[0-9][A-Z]{2}")


@cache
def _config() -> dict:
    return load_toml("gis.toml")


@cache
def centroids(name: str) -> dict[str, tuple[float, float]]:
    """A centroid table of ``reference_data/`` (``areas.csv``, ``postcode_districts.csv``):
    first column (a district in capitals) -> (latitude, longitude). A table that someone
    edited wrongly is one clear error, not a traceback."""
    with reference_path(name).open("r", encoding="utf-8") as fh:
        frame = pd.read_csv(fh, dtype=str, keep_default_na=False, comment="#")
    if len(frame.columns) < 3 or not {"latitude", "longitude"} <= set(frame.columns):
        raise InputError(f"reference_data/{name} needs a name column, then latitude and "
                         "longitude.")
    key = frame.columns[0]
    lat = pd.to_numeric(frame["latitude"], errors="coerce")
    lon = pd.to_numeric(frame["longitude"], errors="coerce")
    bad = ~((lat.abs() <= 90) & (lon.abs() <= 180))
    if bad.any():
        raise InputError(f"reference_data/{name}: {frame[key][bad].iat[0]!r} has no latitude "
                         "in -90..90 and longitude in -180..180 (WGS84 decimal degrees).")
    names = frame[key].str.strip()
    if key == "district":
        names = names.str.upper()
    return dict(zip(names, zip(lat.tolist(), lon.tolist())))


# --- British National Grid -> WGS84 ---------------------------------------------------------


def osgb36_to_wgs84(easting, northing) -> tuple[np.ndarray, np.ndarray]:
    """British National Grid easting/northing (metres, OSGB36) -> WGS84 (latitude, longitude)
    in degrees: the Ordnance Survey's transverse Mercator inverse on the Airy 1830 ellipsoid,
    then its 7-parameter Helmert transformation (about 5 m accuracy)."""
    lat36, lon36 = _grid_to_osgb36(np.asarray(easting, float), np.asarray(northing, float))
    c = _config()["osgb36"]
    x, y, z = _cartesian(lat36, lon36, c["airy_a_m"], c["airy_b_m"])
    tx, ty, tz = c["helmert_t_m"]
    rx, ry, rz = (math.radians(r / 3600) for r in c["helmert_r_arcsec"])
    s = 1 + c["helmert_s_ppm"] * 1e-6
    x2 = tx + s * x - rz * y + ry * z
    y2 = ty + rz * x + s * y - rx * z
    z2 = tz - ry * x + rx * y + s * z
    return _geodetic(x2, y2, z2, c["grs80_a_m"], c["grs80_b_m"])


def _grid_to_osgb36(E: np.ndarray, N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = _config()["osgb36"]
    a, b, F0 = c["airy_a_m"], c["airy_b_m"], c["scale_factor"]
    lat0, lon0 = math.radians(c["origin_lat_deg"]), math.radians(c["origin_lon_deg"])
    E0, N0 = c["false_easting_m"], c["false_northing_m"]
    e2 = 1 - (b * b) / (a * a)
    n = (a - b) / (a + b)

    def meridional(lat):
        d, s = lat - lat0, lat + lat0
        return b * F0 * ((1 + n + 1.25 * n**2 + 1.25 * n**3) * d
                         - (3 * n + 3 * n**2 + 21 / 8 * n**3) * np.sin(d) * np.cos(s)
                         + (15 / 8 * n**2 + 15 / 8 * n**3) * np.sin(2 * d) * np.cos(2 * s)
                         - 35 / 24 * n**3 * np.sin(3 * d) * np.cos(3 * s))

    lat = (N - N0) / (a * F0) + lat0
    for _ in range(20):  # converges to 0.01 mm in a handful of steps
        lat = lat + (N - N0 - meridional(lat)) / (a * F0)
    sin2 = np.sin(lat) ** 2
    nu = a * F0 / np.sqrt(1 - e2 * sin2)
    rho = a * F0 * (1 - e2) / (1 - e2 * sin2) ** 1.5
    eta2 = nu / rho - 1
    t, sec = np.tan(lat), 1 / np.cos(lat)
    VII = t / (2 * rho * nu)
    VIII = t / (24 * rho * nu**3) * (5 + 3 * t**2 + eta2 - 9 * t**2 * eta2)
    IX = t / (720 * rho * nu**5) * (61 + 90 * t**2 + 45 * t**4)
    X = sec / nu
    XI = sec / (6 * nu**3) * (nu / rho + 2 * t**2)
    XII = sec / (120 * nu**5) * (5 + 28 * t**2 + 24 * t**4)
    XIIA = sec / (5040 * nu**7) * (61 + 662 * t**2 + 1320 * t**4 + 720 * t**6)
    dE = E - E0
    return (lat - VII * dE**2 + VIII * dE**4 - IX * dE**6,
            lon0 + X * dE - XI * dE**3 + XII * dE**5 - XIIA * dE**7)


def _cartesian(lat, lon, a, b):
    e2 = 1 - (b * b) / (a * a)
    nu = a / np.sqrt(1 - e2 * np.sin(lat) ** 2)
    return (nu * np.cos(lat) * np.cos(lon), nu * np.cos(lat) * np.sin(lon),
            (1 - e2) * nu * np.sin(lat))


def _geodetic(x, y, z, a, b):
    e2 = 1 - (b * b) / (a * a)
    p = np.hypot(x, y)
    lat = np.arctan2(z, p * (1 - e2))
    for _ in range(10):
        nu = a / np.sqrt(1 - e2 * np.sin(lat) ** 2)
        lat = np.arctan2(z + e2 * nu * np.sin(lat), p)
    return np.degrees(lat), np.degrees(np.arctan2(y, x))


# --- where each exhibit is ------------------------------------------------------------------


def outward_code(text: str) -> str:
    """'QA1 2BC' / 'qa12bc' / 'QA1' -> 'QA1'; '' when the text is not a postcode or district."""
    t = " ".join(str(text).upper().split())
    m = _FULL_POSTCODE.fullmatch(t)
    if m:
        return m.group(1)
    head = t.split(" ")[0] if t else ""
    return head if _OUTWARD.fullmatch(head) else ""


def _column(attributes: pd.DataFrame, words: list[str]) -> str | None:
    """The first attribute column (in name order) whose name holds one of ``words``."""
    for col in sorted(attributes.columns):
        name = f"_{col.removeprefix(ATTRIBUTE_PREFIX)}_"
        if any(f"_{w}_" in name for w in words):
            return col
    return None


def _numbers(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values.astype(str).str.strip(), errors="coerce").to_numpy(dtype=float)


def _lookup(names: np.ndarray, table: dict[str, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes of ``names`` in a centroid table (NaN where absent)."""
    keys = pd.Series(names, dtype=object)
    return (keys.map({k: v[0] for k, v in table.items()}).to_numpy(dtype=float),
            keys.map({k: v[1] for k, v in table.items()}).to_numpy(dtype=float))


@dataclass
class Points:
    """Each exhibit's point (NaN where unknown) and how it was found ('' where not)."""

    lat: np.ndarray
    lon: np.ndarray
    how: np.ndarray
    district: np.ndarray     # outward code found in postcode_districts.csv, else ''
    columns: list[str]       # attribute columns read


def exhibit_points(records: pd.DataFrame, attributes: pd.DataFrame) -> Points:
    """Where each exhibit is (see the module docstring for the order)."""
    cfg = _config()
    n = len(records)
    lat, lon = np.full(n, np.nan), np.full(n, np.nan)
    how = np.full(n, "", dtype=object)
    used: list[str] = []

    def fill(y, x, ok, label):
        ok = ok & np.isnan(lat)
        lat[ok], lon[ok] = y[ok], x[ok]
        how[ok] = label

    la, lo = _column(attributes, cfg["latitude_words"]), _column(attributes, cfg["longitude_words"])
    if la and lo:
        y, x = _numbers(attributes[la]), _numbers(attributes[lo])
        with np.errstate(invalid="ignore"):
            # (0, 0) is how many systems write "no location"
            ok = (np.abs(y) <= 90) & (np.abs(x) <= 180) & ~((y == 0) & (x == 0))
        fill(y, x, ok, "coordinates")
        used += [la, lo]
    ea, no = _column(attributes, cfg["easting_words"]), _column(attributes, cfg["northing_words"])
    if ea and no:
        e, nn = _numbers(attributes[ea]), _numbers(attributes[no])
        c = cfg["osgb36"]
        with np.errstate(invalid="ignore"):
            ok = (e >= 0) & (e <= c["max_easting_m"]) & (nn >= 0) & (nn <= c["max_northing_m"])
        y, x = np.full(n, np.nan), np.full(n, np.nan)
        if ok.any():
            y[ok], x[ok] = osgb36_to_wgs84(e[ok], nn[ok])
        fill(y, x, ok, "grid_reference")
        used += [ea, no]
    district = np.full(n, "", dtype=object)
    dc = _column(attributes, cfg["district_words"])
    if dc:
        table = centroids("postcode_districts.csv")
        codes = np.array([outward_code(v) for v in attributes[dc].to_numpy()], dtype=object)
        known = np.array([c in table for c in codes], dtype=bool)
        district[known] = codes[known]
        y, x = _lookup(codes, table)
        fill(y, x, known, "postcode_district")
        used.append(dc)
    areas = centroids("areas.csv")
    names = records["area"].to_numpy(dtype=object)
    y, x = _lookup(names, areas)
    fill(y, x, ~np.isnan(y), "area")
    return Points(lat, lon, how, district, used)


# --- places: what features aggregate over ---------------------------------------------------


@dataclass
class Places:
    """The place of every exhibit ('' = not on the map) and where each place is drawn."""

    place: np.ndarray                        # per exhibit
    kind: dict[str, str]                     # place -> area | force | postcode_district | grid_cell
    point: dict[str, tuple[float, float]]    # place -> (latitude, longitude)
    points: Points

    def summary(self) -> dict:
        mapped = self.place != ""
        how = self.points.how
        return {"exhibits_mapped": int(mapped.sum()), "exhibits_not_mapped": int((~mapped).sum()),
                "located_by": {h: int((how == h).sum()) for h in HOW if (how == h).any()},
                "location_columns": sorted(self.points.columns),
                "places": len(self.point)}


def _snap(v: np.ndarray | float, step: float):
    return np.round(np.asarray(v, float) / step) * step


def places(records: pd.DataFrame, attributes: pd.DataFrame, unit: str = "area",
           redactor=None) -> Places:
    """Place of each exhibit and each place's point. ``unit``: 'area' or 'force'. With a
    redactor, areas are coarsened as in every other redacted output, and exhibits with no area
    stay off the map (a district or grid cell would be finer than what the run shares)."""
    from profiling.redact import UNMAPPED_AREA

    pts = exhibit_points(records, attributes)
    step = float(_config()["snap_deg"])
    areas = records["area"].to_numpy(dtype=object)
    forces = records["force"].to_numpy(dtype=object)
    if unit == "force":
        place = forces.copy()
    elif redactor is not None:
        place = np.asarray(redactor.area(areas, forces), dtype=object)
        if redactor.area_map is not None:          # the catch-all of unlisted areas is no place
            place = np.where(place == UNMAPPED_AREA, "", place).astype(object)
    else:
        place = areas.copy()
    label = unit
    if redactor is not None and unit == "area":
        label = "force" if redactor.coarsen_to_force else \
            "coarse_area" if redactor.area_map is not None else unit
    kind = {p: label for p in set(place) - {""}}
    if redactor is None:
        loose = (place == "") & (pts.how != "")
        by_district = loose & (pts.district != "")
        place[by_district] = pts.district[by_district]
        kind.update(dict.fromkeys(pts.district[by_district], "postcode_district"))
        cell = loose & ~by_district
        if cell.any():
            digits = max(0, -math.floor(math.log10(step)))
            names = [f"cell {y:.{digits}f} {x:.{digits}f}"
                     for y, x in zip(_snap(pts.lat[cell], step), _snap(pts.lon[cell], step))]
            place[cell] = names
            kind.update(dict.fromkeys(names, "grid_cell"))
    frame = pd.DataFrame({"place": place, "area": areas, "lat": pts.lat, "lon": pts.lon})
    frame = frame[frame["place"] != ""]
    # a place's point: the mean of the table centroids of its areas, a district's own centroid,
    # or its exhibits' mean snapped to the grid, in that order
    known = frame.loc[frame["area"].isin(centroids("areas.csv")), ["place", "area"]]
    known = known.drop_duplicates()
    y, x = _lookup(known["area"].to_numpy(dtype=object), centroids("areas.csv"))
    by_table = pd.DataFrame({"place": known["place"].to_numpy(), "lat": y, "lon": x}) \
        .groupby("place").mean()
    mean = frame.groupby("place")[["lat", "lon"]].mean().dropna()
    snapped = pd.DataFrame(_snap(mean.to_numpy(), step), index=mean.index, columns=["lat", "lon"])
    point = dict(zip(snapped.index, zip(snapped["lat"].tolist(), snapped["lon"].tolist())))
    point.update(zip(by_table.index, zip(by_table["lat"].tolist(), by_table["lon"].tolist())))
    districts = centroids("postcode_districts.csv")
    point.update({p: districts[p] for p in point if kind[p] == "postcode_district"})
    point = dict(sorted(point.items()))
    place = np.where(pd.Series(place, dtype=object).isin(set(point)).to_numpy(), place, "")
    place = place.astype(object)
    return Places(place, {p: kind[p] for p in point}, point, pts)


# --- features -------------------------------------------------------------------------------


def _point(p: tuple[float, float]) -> dict:
    d = int(_config()["coordinate_decimals"])
    return {"type": "Point", "coordinates": [round(p[1], d), round(p[0], d)]}


def _line(a: tuple[float, float], b: tuple[float, float]) -> dict:
    d = int(_config()["coordinate_decimals"])
    return {"type": "LineString",
            "coordinates": [[round(a[1], d), round(a[0], d)], [round(b[1], d), round(b[0], d)]]}


def _feature(geometry: dict, properties: dict) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def collection(features: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": features}


def class_features(classes: pd.DataFrame, where: Places, rows: np.ndarray) -> list[dict]:
    """One point per chemical class (with links: two or more exhibits) per place: members
    there, seizures, first and last seizure date, drugs. ``classes``: the link run's classes
    (exhibit_id, class_id, seizure_id, seized_on, drug); ``rows``: each one's record row."""
    from profiling.market.seizures import seizure_keys

    sizes = classes["class_id"].map(classes["class_id"].value_counts())
    frame = pd.DataFrame({
        "class_id": classes["class_id"].to_numpy(dtype=object),
        "place": where.place[rows], "size": sizes.to_numpy(),
        "seizure": seizure_keys(classes[["seizure_id", "exhibit_id"]]),
        "seized_on": classes["seized_on"].to_numpy(dtype=object),
        "drug": classes["drug"].to_numpy(dtype=object)})
    frame = frame[(frame["size"] > 1) & (frame["place"] != "")]
    if not len(frame):
        return []
    # per (class, place), all at once: a day's run at 10^6 has thousands of such groups
    by = ["class_id", "place"]
    g = frame.groupby(by, sort=True)
    day = frame["seized_on"].where(frame["seized_on"].notna() & (frame["seized_on"] != ""))
    drugs = frame.loc[frame["drug"].notna() & (frame["drug"] != ""), [*by, "drug"]]
    drugs = drugs.drop_duplicates().sort_values([*by, "drug"]).groupby(by)["drug"].agg(";".join)
    seen = day.groupby([frame[b] for b in by]).agg(["min", "max"])
    table = pd.DataFrame({"n_exhibits": g.size(), "n_seizures": g["seizure"].nunique(),
                          "class_exhibits": g["size"].first(),
                          "first_seized": seen["min"], "last_seized": seen["max"],
                          "drugs": drugs}).reset_index()
    out = []
    for cid, p, n_ex, n_sz, size, first, last, drug in table.itertuples(index=False):
        out.append(_feature(_point(where.point[p]), {
            "class_id": cid, "place": p, "place_kind": where.kind[p],
            "n_exhibits": int(n_ex), "n_seizures": int(n_sz), "class_exhibits": int(size),
            "first_seized": first if isinstance(first, str) else None,
            "last_seized": last if isinstance(last, str) else None,
            "drugs": drug if isinstance(drug, str) else ""}))
    return out


LINK_CHUNK = 5_000_000


def link_features(links: pd.DataFrame, classes: pd.DataFrame, where: Places,
                  rows: np.ndarray) -> tuple[list[dict], dict]:
    """One line per pair of places joined by chemical links: how many links, how many share
    the cut or the distribution, which classes. Returns (features, counts of the links that
    are not drawn: inside one place, or with an end off the map). Links are counted in
    chunks on integer codes, so 10^8 links need no per-link strings."""
    from profiling.linkchart import end_codes

    code_a, code_b, ends = end_codes(links)
    # each exhibit id looked up once, not once per link (-1: not among the classes; a missing
    # end, code -1, takes the appended -1)
    at = np.append(pd.Index(classes["exhibit_id"].to_numpy(dtype=object)).get_indexer(ends), -1)
    place_names, place_code = np.unique(np.asarray(where.place[rows], dtype=object),
                                        return_inverse=True)          # sorted: '' first
    place_code = place_code.astype(np.int64)
    if len(place_names) and place_names[0] == "":
        place_names, place_code = place_names[1:], place_code - 1     # '' -> -1: off the map
    class_names, class_code = np.unique(classes["class_id"].to_numpy(dtype=object),
                                        return_inverse=True)
    n_places, n_classes = max(len(place_names), 1), max(len(class_names), 1)
    keys, cuts, dists, pairs = [], [], [], []
    n_off = n_inside = 0
    for a in range(0, len(links), LINK_CHUNK):
        part = links.iloc[a:a + LINK_CHUNK]
        ea, eb = at[code_a[a:a + LINK_CHUNK]], at[code_b[a:a + LINK_CHUNK]]
        pa = np.where(ea >= 0, place_code[ea], -1)
        pb = np.where(eb >= 0, place_code[eb], -1)
        lo, hi = np.minimum(pa, pb), np.maximum(pa, pb)
        off = lo < 0
        inside = ~off & (lo == hi)
        drawn = ~off & ~inside
        n_off += int(off.sum())
        n_inside += int(inside.sum())
        key = lo[drawn] * n_places + hi[drawn]
        keys.append(key)
        cuts.append(part["same_cut"].to_numpy(dtype=bool)[drawn])
        dists.append(part["same_distribution"].to_numpy(dtype=bool)[drawn])
        pairs.append(np.unique(np.concatenate([key * n_classes + class_code[ea[drawn]],
                                               key * n_classes + class_code[eb[drawn]]])))
    key = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    unique, inverse, count = np.unique(key, return_inverse=True, return_counts=True)
    n_cut = np.bincount(inverse, weights=np.concatenate(cuts) if cuts else None,
                        minlength=len(unique))
    n_dist = np.bincount(inverse, weights=np.concatenate(dists) if dists else None,
                         minlength=len(unique))
    pairs = np.unique(np.concatenate(pairs)) if pairs else np.zeros(0, np.int64)
    pair_key, pair_class = pairs // n_classes, pairs % n_classes
    starts = np.searchsorted(pair_key, unique, side="left")
    ends = np.searchsorted(pair_key, unique, side="right")
    out = []
    for k, pk in enumerate(unique.tolist()):
        pa, pb = place_names[pk // n_places], place_names[pk % n_places]
        cls = class_names[pair_class[starts[k]:ends[k]]].tolist()
        out.append(_feature(_line(where.point[pa], where.point[pb]), {
            "place_a": pa, "place_b": pb, "n_links": int(count[k]),
            "n_same_cut": int(n_cut[k]), "n_same_distribution": int(n_dist[k]),
            "n_classes": len(cls), "class_ids": ";".join(cls)}))
    return out, {"links_drawn": len(key), "links_within_one_place": n_inside,
                 "links_not_mapped": n_off}


def market_features(table: pd.DataFrame, where: Places) -> tuple[list[dict], str | None]:
    """One point per market unit: seizures and priced purchases over every period, and the
    latest period with any seizure: its counts beside its medians (price per gram and per rock,
    purity, price per pure gram with its interval) and the cell's small-numbers warnings.
    Returns (features, that period)."""
    seized = table[table["n_seizures"] > 0]
    latest = str(seized["period"].max()) if len(seized) else None
    out = []
    for unit, g in table.groupby("area", sort=True):
        if unit not in where.point:
            continue
        cell = g[g["period"] == latest]
        c = cell.iloc[0] if len(cell) else None

        def val(col, cell=c):
            return None if cell is None else cell[col]

        out.append(_feature(_point(where.point[unit]), {
            "area": unit, "place_kind": where.kind[unit],
            "n_seizures": int(g["n_seizures"].sum()), "n_priced": int(g["n_priced"].sum()),
            "periods": len(g), "period": latest,
            "period_n_seizures": int(val("n_seizures") or 0),
            "period_n_priced": int(val("n_priced") or 0),
            "median_price_per_g": val("median_price_per_g"),
            "median_price_per_rock": val("median_price_per_rock"),
            "median_purity": val("median_purity"),
            "price_per_pure_g": val("price_per_pure_g"),
            "price_per_pure_g_lo": val("price_per_pure_g_lo"),
            "price_per_pure_g_hi": val("price_per_pure_g_hi"),
            "warnings": val("warnings") or ""}))
    return out, latest


# --- the commands' maps ---------------------------------------------------------------------

NO_LOCATION = ("no exhibit has a location (latitude/longitude or easting/northing columns, a "
               "postcode district listed in reference_data/postcode_districts.csv, or an area "
               "listed in reference_data/areas.csv): no GeoJSON written")


def write_geojson(path: Path, features: list[dict]) -> None:
    """An RFC 7946 FeatureCollection, owner-readable, sorted keys (reruns give the same bytes)."""
    from profiling.market.outputs import write_json

    write_json(path, collection(features))


def link_maps(out: Path, result, data, redactor=None) -> dict:
    """`profile link`: ``classes.geojson`` and ``links.geojson`` into ``out``; returns the
    summary's ``gis`` entry."""
    rows = pd.Index(data.records["exhibit_id"]).get_indexer(result.classes["exhibit_id"])
    where = places(data.records.iloc[rows].reset_index(drop=True),
                   data.attributes.iloc[rows].reset_index(drop=True), "area", redactor)
    if not where.point:
        return {"files": [], "note": NO_LOCATION, **where.summary()}
    at = np.arange(len(rows))
    classes = class_features(result.classes, where, at)
    lines, counts = link_features(result.links, result.classes, where, at)
    write_geojson(out / "classes.geojson", classes)
    write_geojson(out / "links.geojson", lines)
    return {"files": ["classes.geojson", "links.geojson"], **where.summary(),
            "class_features": len(classes), "link_features": len(lines), **counts}


def market_map(out: Path, table: pd.DataFrame, records: pd.DataFrame, attributes: pd.DataFrame,
               by: str, redactor=None) -> dict:
    """`profile market`: ``market.geojson`` into ``out``; returns market.json's ``gis``
    entry. ``records`` are the records before any coarsening (the redactor coarsens them the
    way the market table was)."""
    where = places(records, attributes, by, redactor)
    if not where.point:
        return {"files": [], "note": NO_LOCATION, **where.summary()}
    features, latest = market_features(table, where)
    write_geojson(out / "market.geojson", features)
    unmapped = sorted(set(table["area"]) - set(where.point))
    return {"files": ["market.geojson"], **where.summary(), "features": len(features),
            "latest_period": latest, "units_not_mapped": unmapped}
