"""GIS export: where exhibits are (coordinates, grid references, postcode districts, area
centroids), aggregation to places, and the GeoJSON that `profile link` and `profile market`
write — valid RFC 7946, counts equal to classes.csv / links.csv / market.csv, deterministic,
owner-only, nothing written (and said so) when nothing can be placed."""

import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from profiling.errors import InputError
from profiling.gis import (
    _grid_to_osgb36,
    centroids,
    exhibit_points,
    osgb36_to_wgs84,
    outward_code,
    places,
)
from profiling.library import LibraryData, blank_records, write_library, write_lock
from profiling.redact import Redactor

from .conftest import run_cli
from .market_synthetic import market
from .test_link import make_export

AREAS = ["Ashcombe", "Brindley", "Carrow Vale", "Dunholt"]


def check_geojson(doc: dict, geometry: str) -> list[dict]:
    """RFC 7946 structure as QGIS (OGR's GeoJSON driver) reads it: a FeatureCollection of
    Features with one geometry type, [longitude, latitude] positions in range, no 'crs' member
    (WGS84 implied), flat properties whose type is the same in every feature (null allowed)."""
    assert doc["type"] == "FeatureCollection" and isinstance(doc["features"], list)
    assert "crs" not in doc
    types: dict[str, set] = {}
    for f in doc["features"]:
        assert f["type"] == "Feature" and set(f) == {"type", "geometry", "properties"}
        g = f["geometry"]
        assert g["type"] == geometry
        positions = [g["coordinates"]] if geometry == "Point" else g["coordinates"]
        assert geometry == "Point" or len(positions) >= 2
        for pos in positions:
            assert len(pos) == 2 and all(isinstance(v, float | int) for v in pos)
            lon, lat = pos
            assert -180 <= lon <= 180 and -90 <= lat <= 90
        for k, v in f["properties"].items():
            assert v is None or isinstance(v, str | int | float | bool), (k, v)
            if v is not None:
                types.setdefault(k, set()).add(type(v).__name__)
    for k, seen in types.items():
        assert seen <= {"int", "float"} or len(seen) == 1, (k, seen)
    try:  # a real geometry library, where one is installed (not a dependency)
        from shapely.geometry import shape
    except ImportError:
        pass
    else:
        for f in doc["features"]:
            assert shape(f["geometry"]).is_valid
    return doc["features"]


# --- British National Grid ------------------------------------------------------------------


def test_grid_reference_matches_the_ordnance_survey_worked_example():
    # OS "A guide to coordinate systems in Great Britain", Annex C worked example:
    # E 651409.903, N 313177.270 -> OSGB36 52°39'27.2531"N, 1°43'4.5177"E
    lat, lon = _grid_to_osgb36(np.array([651409.903]), np.array([313177.270]))
    assert math.degrees(lat[0]) == pytest.approx(52 + 39 / 60 + 27.2531 / 3600, abs=1e-7)
    assert math.degrees(lon[0]) == pytest.approx(1 + 43 / 60 + 4.5177 / 3600, abs=1e-7)
    # the same point in ETRS89/WGS84 (52°39'28.8282"N, 1°42'57.7870"E): the Helmert
    # transformation is good to about 5 m
    wlat, wlon = osgb36_to_wgs84([651409.903], [313177.270])
    north_m = (wlat[0] - (52 + 39 / 60 + 28.8282 / 3600)) * 111_200
    east_m = (wlon[0] - (1 + 42 / 60 + 57.7870 / 3600)) * 111_200 * math.cos(math.radians(52.66))
    assert math.hypot(north_m, east_m) < 10


def test_postcodes_give_their_outward_code():
    assert outward_code("QA1 2BC") == "QA1"
    assert outward_code("qa12bc") == "QA1"
    assert outward_code(" qb2 ") == "QB2"
    assert outward_code("SW1A 1AA") == "SW1A"
    assert outward_code("not a postcode") == "" and outward_code("") == ""


def test_a_wrongly_edited_centroid_table_is_one_clear_error(tmp_path, monkeypatch):
    from profiling import gis

    bad = tmp_path / "areas.csv"
    bad.write_text("area,latitude,longitude\nAshcombe,95,0\n")
    monkeypatch.setattr(gis, "reference_path", lambda name: bad)
    gis.centroids.cache_clear()
    try:
        with pytest.raises(InputError, match="Ashcombe"):
            gis.centroids("areas.csv")
    finally:
        gis.centroids.cache_clear()


# --- where exhibits are, and places -----------------------------------------------------------


def _records(areas, forces=None):
    r = blank_records(len(areas))
    r["area"] = np.array(areas, dtype=object)
    r["force"] = np.array(forces or ["Northmoor Police"] * len(areas), dtype=object)
    return r


def test_exhibit_points_come_from_coordinates_then_grid_then_district_then_area():
    rec = _records(["Ashcombe"] * 5 + ["Nowhere"])
    attrs = pd.DataFrame({
        "attr_seizure_latitude": ["51.5", "", "", "", "95", ""],
        "attr_seizure_longitude": ["-0.12", "", "", "", "0", ""],
        "attr_easting": ["", "651409.903", "", "", "", "-5"],
        "attr_northing": ["", "313177.270", "", "", "", "7"],
        "attr_postcode": ["", "", "QB1 2CD", "ZZ9 9ZZ", "", "QB2"],
    })
    pts = exhibit_points(rec, attrs)
    assert pts.how.tolist() == ["coordinates", "grid_reference", "postcode_district", "area",
                                "area", "postcode_district"]
    assert (pts.lat[0], pts.lon[0]) == (51.5, -0.12)
    assert pts.lat[1] == pytest.approx(52.658, abs=1e-3)
    assert (pts.lat[2], pts.lon[2]) == centroids("postcode_districts.csv")["QB1"]
    assert (pts.lat[3], pts.lon[3]) == centroids("areas.csv")["Ashcombe"]  # unknown district
    assert pts.district.tolist() == ["", "", "QB1", "", "", "QB2"]


def test_places_aggregate_and_never_show_one_exhibits_own_coordinates():
    rec = _records(["Ashcombe", "Ashcombe", "Elsewhere", "Elsewhere", "", "", ""])
    attrs = pd.DataFrame({
        "attr_lat": ["", "", "52.123456", "52.127", "", "53.4567", ""],
        "attr_lon": ["", "", "-1.234567", "-1.238", "", "-2.3456", ""],
        "attr_postcode_district": ["", "", "", "", "QC1", "", ""]})
    where = places(rec, attrs)
    assert where.place.tolist() == ["Ashcombe", "Ashcombe", "Elsewhere", "Elsewhere", "QC1",
                                    "cell 53.46 -2.35", ""]
    assert where.point["Ashcombe"] == centroids("areas.csv")["Ashcombe"]
    # an area without a table centroid: its exhibits' mean, snapped to the 0.01-degree grid
    assert where.point["Elsewhere"] == pytest.approx((52.13, -1.24))
    assert where.point["cell 53.46 -2.35"] == pytest.approx((53.46, -2.35))
    assert where.kind == {"Ashcombe": "area", "Elsewhere": "area", "QC1": "postcode_district",
                          "cell 53.46 -2.35": "grid_cell"}
    s = where.summary()
    assert s["exhibits_mapped"] == 6 and s["exhibits_not_mapped"] == 1
    # redacted: areas coarsened (point: mean of the member areas' centroids); exhibits without
    # an area stay off the map, since a district or grid cell is finer than what is shared
    red = Redactor(b"k" * 32, {"Ashcombe": "North", "Brindley": "North"})
    rec2 = _records(["Ashcombe", "Brindley", "Dunholt", ""])
    coarse = places(rec2, pd.DataFrame({"attr_postcode": ["", "", "", "QC1"]}), "area", red)
    assert coarse.place.tolist() == ["North", "North", "", ""]   # Dunholt -> 'other': unplaced
    table = centroids("areas.csv")
    assert coarse.point["North"] == pytest.approx(
        tuple(np.mean([table["Ashcombe"], table["Brindley"]], axis=0)))
    assert coarse.kind == {"North": "coarse_area"}


# --- profile link -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def located(tmp_path_factory):
    """A link run on an export whose areas are in areas.csv, with some exhibits that have no
    area but coordinates; and a second run on the same library."""
    d = tmp_path_factory.mktemp("gis")
    export = make_export(d / "e.csv", batches=4)
    frame = pd.read_csv(export)
    rng = np.random.default_rng(5)
    frame["area"] = rng.choice(AREAS, len(frame))
    frame["force"] = "Northmoor Police"
    frame["seized_on"] = (pd.Timestamp("2025-01-01")
                          + pd.to_timedelta(rng.integers(0, 200, len(frame)), "D")).strftime("%Y-%m-%d")
    loose = np.arange(len(frame)) % 9 == 4
    frame.loc[loose, "area"] = ""
    frame["Latitude"] = np.where(loose, "53.4567", "")
    frame["Longitude"] = np.where(loose, "-2.3456", "")
    frame.to_csv(export, index=False)
    for out in ("out", "again"):
        r = run_cli("link", *([export] if out == "out" else []), "--library", d / "lib.h5",
                    "--out", d / out, "--as-of", "2026-01-01", "--quiet")
        assert r.returncode == 0, r.stderr
    r = run_cli("link", "--library", d / "lib.h5", "--out", d / "shared", "--redact", "--key",
                d / "key", "--coarsen-area", "force", "--quiet")
    assert r.returncode == 0, r.stderr
    return d


def test_link_writes_classes_and_links_geojson_with_counts_of_classes_and_links_csv(located):
    out = located / "out"
    summary = json.loads((out / "summary.json").read_text())
    gis = summary["gis"]
    assert gis["files"] == ["classes.geojson", "links.geojson"]
    assert gis["located_by"]["area"] > 0 and gis["located_by"]["coordinates"] > 0
    classes = pd.read_csv(out / "classes.csv", dtype=str)
    features = check_geojson(json.loads((out / "classes.geojson").read_text()), "Point")
    props = pd.DataFrame([f["properties"] for f in features])
    # every class with links appears, its members split over places, summing to classes.csv
    sizes = classes["class_id"].value_counts()
    linked = sizes[sizes > 1]
    assert set(props["class_id"]) == set(linked.index)
    assert props.groupby("class_id")["n_exhibits"].sum().to_dict() == linked.to_dict()
    assert props.groupby("class_id")["class_exhibits"].first().to_dict() == linked.to_dict()
    assert set(props["place"]) <= {*AREAS, "cell 53.46 -2.35"}
    grid = props[props["place_kind"] == "grid_cell"]
    assert len(grid) and (grid["place"] == "cell 53.46 -2.35").all()
    assert (props["first_seized"] <= props["last_seized"]).all()
    # no exhibit-level detail: no property names an exhibit or a seizure
    assert not {"exhibit_id", "seizure_id"} & set(props.columns)
    blob = (out / "classes.geojson").read_text() + (out / "links.geojson").read_text()
    assert not any(e in blob for e in classes["exhibit_id"])
    # links: lines between distinct places; drawn + inside one place + unplaced = links.csv
    links = pd.read_csv(out / "links.csv")
    lines = check_geojson(json.loads((out / "links.geojson").read_text()), "LineString")
    lp = pd.DataFrame([f["properties"] for f in lines])
    assert (lp["place_a"] < lp["place_b"]).all()
    assert lp["n_links"].sum() == gis["links_drawn"]
    assert gis["links_drawn"] + gis["links_within_one_place"] + gis["links_not_mapped"] == len(links)
    table = centroids("areas.csv")
    first = lines[0]
    a, b = first["properties"]["place_a"], first["properties"]["place_b"]
    ends = [table.get(p, (53.46, -2.35)) for p in (a, b)]
    assert first["geometry"]["coordinates"] == [[lon, lat] for lat, lon in ends]
    for name in ("classes.geojson", "links.geojson"):
        assert os.stat(out / name).st_mode & 0o077 == 0


def test_geojson_is_the_same_bytes_on_a_rerun(located):
    for name in ("classes.geojson", "links.geojson"):
        assert (located / "out" / name).read_bytes() == (located / "again" / name).read_bytes()


def test_redacted_link_maps_show_coarsened_areas_only(located):
    out = located / "shared"
    classes = check_geojson(json.loads((out / "classes.geojson").read_text()), "Point")
    assert {f["properties"]["place"] for f in classes} == {"Northmoor Police"}
    assert {f["properties"]["place_kind"] for f in classes} == {"force"}
    # the grid cell of the exhibits without an area is not shared: they count in the force
    table = centroids("areas.csv")
    centre = np.mean([table[a] for a in AREAS], axis=0)
    assert classes[0]["geometry"]["coordinates"] == pytest.approx([centre[1], centre[0]])
    # one place: every link is inside it, no line is drawn
    assert json.loads((out / "links.geojson").read_text())["features"] == []
    gis = json.loads((out / "summary.json").read_text())["gis"]
    assert gis["links_drawn"] == 0 and gis["exhibits_not_mapped"] == 0
    # the fix that came with it: the charts' areas are coarsened too
    entities = pd.read_csv(out / "i2_entities.csv", dtype=str)
    assert set(entities["Area"]) == {"Northmoor Police"}
    assert "Ashcombe" not in (out / "report.html").read_text()
    assert {"classes.geojson", "links.geojson"} <= set(
        json.loads((out / "redaction.json").read_text())["files"])


def test_link_without_any_location_writes_no_geojson_and_says_so(tmp_path):
    export = make_export(tmp_path / "e.csv", batches=1)     # areas A0, A1: not in areas.csv
    r = run_cli("link", export, "--out", tmp_path / "out", "--as-of", "2026-01-01", "--quiet")
    assert r.returncode == 0, r.stderr
    gis = json.loads((tmp_path / "out" / "summary.json").read_text())["gis"]
    assert gis["files"] == [] and "no GeoJSON written" in gis["note"]
    assert not list((tmp_path / "out").glob("*.geojson"))


# --- profile market ---------------------------------------------------------------------------


def _market_library(path, located: bool):
    records, _ = market(n_seizures=600, seed=4, areas=("North", "South", "East"))
    records = records.reset_index(drop=True)
    attrs = pd.DataFrame(index=range(len(records)))
    if located:
        rng = np.random.default_rng(2)
        base = {"North": (52.60, -1.10), "South": (52.40, -1.10), "East": (52.50, -0.90)}
        attrs["attr_latitude"] = [f"{base[a][0] + rng.normal(0, 0.02):.6f}" for a in records["area"]]
        attrs["attr_longitude"] = [f"{base[a][1] + rng.normal(0, 0.02):.6f}" for a in records["area"]]
    with write_lock(path):
        write_library(path, LibraryData(records, np.zeros((len(records), 0)), [], attrs))
    return path


def test_market_geojson_counts_by_area_with_the_latest_periods_medians(tmp_path):
    from profiling.market.prices import run_market

    lib = _market_library(tmp_path / "lib.h5", located=True)
    run = run_market(lib, tmp_path / "m", period="quarter")
    features = check_geojson(json.loads((tmp_path / "m" / "market.geojson").read_text()), "Point")
    table = pd.read_csv(tmp_path / "m" / "market.csv", dtype={"period": str})
    assert [f["properties"]["area"] for f in features] == ["East", "North", "South"]
    latest = run.summary["gis"]["latest_period"]
    assert latest == table.loc[table["n_seizures"] > 0, "period"].max()
    for f in features:
        p = f["properties"]
        rows = table[table["area"] == p["area"]]
        assert p["n_seizures"] == rows["n_seizures"].sum()
        assert p["n_priced"] == rows["n_priced"].sum()
        cell = rows[rows["period"] == latest].iloc[0]
        assert p["period"] == latest and p["period_n_seizures"] == cell["n_seizures"]
        for col in ("median_price_per_g", "median_purity", "price_per_pure_g"):
            assert p[col] == pytest.approx(cell[col], nan_ok=True) if p[col] is not None \
                else np.isnan(cell[col])
        # the area's point: its exhibits' mean snapped to the grid, not an exhibit's location
        lon, lat = f["geometry"]["coordinates"]
        assert round(lat * 100) == pytest.approx(lat * 100) and round(lon * 100) == pytest.approx(lon * 100)
    summary = json.loads((tmp_path / "m" / "market.json").read_text())
    assert summary["gis"]["files"] == ["market.geojson"]
    assert os.stat(tmp_path / "m" / "market.geojson").st_mode & 0o077 == 0
    # by force: one place, at the mean of the force's exhibits
    run_market(lib, tmp_path / "f", by="force")
    forces = check_geojson(json.loads((tmp_path / "f" / "market.geojson").read_text()), "Point")
    assert [f["properties"]["area"] for f in forces] == ["Testshire Police"]
    assert forces[0]["properties"]["place_kind"] == "force"


def test_market_without_location_writes_no_geojson_and_says_so(tmp_path):
    lib = _market_library(tmp_path / "lib.h5", located=False)
    r = run_cli("market", lib, "--out", tmp_path / "m", "--quiet")
    assert r.returncode == 0, r.stderr
    gis = json.loads((tmp_path / "m" / "market.json").read_text())["gis"]
    assert gis["files"] == [] and "no GeoJSON written" in gis["note"]
    assert not (tmp_path / "m" / "market.geojson").exists()
