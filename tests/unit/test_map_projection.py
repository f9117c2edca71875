"""The case map's geometry: TopoJSON decoding, the projection, the views and the shading."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from services.registry.web.dashboard import geo, pictures

DATA = Path(__file__).resolve().parents[2] / "services/registry/reference/data"
SEEDED = json.loads((DATA / "jurisdictions.json").read_text())["jurisdictions"]


def test_arcs_are_delta_decoded_and_a_negative_index_walks_backwards() -> None:
    topology = {
        "transform": {"scale": [0.5, 2.0], "translate": [10.0, -5.0]},
        "arcs": [[[0, 0], [2, 0], [0, 1]], [[2, 1], [-2, 0]]],
    }
    arcs = geo.decode_arcs(topology)
    assert arcs == [[(10.0, -5.0), (11.0, -5.0), (11.0, -3.0)], [(11.0, -3.0), (10.0, -3.0)]]
    # Shared end points are kept once; ~1 is arc 1 reversed.
    assert geo.ring(arcs, [0, 1]) == [(10.0, -5.0), (11.0, -5.0), (11.0, -3.0), (10.0, -3.0)]
    assert geo.ring(arcs, [~1]) == [(10.0, -3.0), (11.0, -3.0)]


def test_the_projection_is_centred_and_keeps_north_up_and_east_right() -> None:
    project = geo.laea((10.0, 52.0))
    assert project(10.0, 52.0) == pytest.approx((0.0, 0.0))
    east, north = project(20.0, 52.0), project(10.0, 60.0)
    assert east[0] > 0
    assert north[1] > 0
    # Equal area: a degree cell near the centre keeps about its spherical area.
    corners = [project(lon, lat) for lon, lat in ((10, 52), (11, 52), (11, 53), (10, 53))]
    area = 0.5 * abs(
        sum(
            x0 * y1 - x1 * y0
            for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True)
        )
    )
    sphere = math.radians(1) * (math.sin(math.radians(53)) - math.sin(math.radians(52)))
    assert area == pytest.approx(sphere, rel=0.01)


def test_every_seeded_jurisdiction_is_drawn_in_some_view_inside_its_frame() -> None:
    views = {v.region.slug: v for v in geo.views()}
    drawn = set().union(*(v.codes() for v in views.values()))
    assert drawn == {j["code"] for j in SEEDED}
    assert {"KR", "JP"} <= views["east-asia"].codes()
    assert "US" in views["us"].codes()
    assert {"FR", "DE", "BE", "IS", "CY", "GE"} <= views["europe"].codes()
    europe = views["europe"]
    shapes = {s.code: s for s in europe.shapes if s.code}
    france, germany, finland = shapes["FR"], shapes["DE"], shapes["FI"]
    assert france.centre[0] < germany.centre[0]  # west is left
    assert finland.centre[1] < germany.centre[1]  # north is up
    for shape in shapes.values():
        left, top, right, bottom = shape.box
        assert min(left, top) >= -1, shape.code
        assert right <= europe.width + 1, shape.code
        assert bottom <= europe.height + 1, shape.code
    assert {s.code for s in shapes.values() if s.tiny} >= {"MT", "LI"}
    assert re.fullmatch(r"(M\d+,\d+(L-?\d+,-?\d+)+Z)+", france.path)


def test_far_off_territories_stay_out_of_the_european_frame() -> None:
    [europe] = [v for v in geo.views() if v.region.slug == "europe"]
    france = next(s for s in europe.shapes if s.code == "FR")
    # French Guiana and the Pacific territories would stretch the box far to the south-west.
    assert france.box[0] > 150
    assert france.box[2] - france.box[0] < 200


def test_shading_steps_up_to_the_busiest_country_and_the_legend_matches() -> None:
    assert [pictures.level(n, 8) for n in (0, 1, 2, 3, 4, 6, 8)] == [0, 1, 1, 2, 2, 3, 4]
    assert pictures.level(3, 0) == 0
    assert [(s.level, s.low, s.high) for s in pictures.legend(8)] == [
        (1, 1, 2),
        (2, 3, 4),
        (3, 5, 6),
        (4, 7, 8),
    ]
    assert [(s.level, s.low, s.high) for s in pictures.legend(2)] == [(2, 1, 1), (4, 2, 2)]
    for busiest in range(1, 30):
        for step in pictures.legend(busiest):
            assert {pictures.level(n, busiest) for n in (step.low, step.high)} == {step.level}


def test_the_case_map_shades_only_seeded_countries_and_labels_their_counts() -> None:
    panels = {p.slug: p for p in pictures.case_map({"FR": 4, "DE": 1, "KR": 2})}
    europe = {c.code: c for c in panels["europe"].countries}
    asia = {c.code: c for c in panels["east-asia"].countries}
    assert (europe["FR"].level, europe["DE"].level, europe["IT"].level) == (4, 1, 0)
    assert asia["KR"].level == 2
    assert europe["FR"].label == "France (FR): 4 cases"
    assert europe["DE"].label.endswith(": 1 case")
    assert europe["MT"].marker is not None
    assert panels["europe"].land  # neighbours drawn for context, without a code
