"""Country shapes for the case map, projected once in Python into SVG path data.

The shapes are Natural Earth's 1:50m admin-0 countries as TopoJSON from the npm package
`world-atlas` (vendored under static/vendor/world-atlas with its licence), so the map needs no
network and no script: the server draws inline SVG and the browser only shows it. Projecting
here also keeps every page's CSP free of a mapping library.

Each view is a Lambert azimuthal equal-area projection centred on its region, so areas compare
fairly: Europe, plus one inset per faraway group of seeded partners (the United States; Korea
and Japan). Points closer than a fraction of a pixel to the previous one are dropped, which
keeps the page small without visibly changing a border.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ATLAS = Path(__file__).parent / "static" / "vendor" / "world-atlas" / "countries-50m.json"

# ISO 3166-1 numeric (world-atlas ids) to alpha-2, for the jurisdictions the registry seeds.
ALPHA2 = {
    "008": "AL", "040": "AT", "070": "BA", "056": "BE", "100": "BG", "756": "CH", "196": "CY",
    "203": "CZ", "276": "DE", "208": "DK", "233": "EE", "724": "ES", "246": "FI", "250": "FR",
    "826": "GB", "268": "GE", "300": "GR", "191": "HR", "348": "HU", "372": "IE", "352": "IS",
    "380": "IT", "392": "JP", "410": "KR", "438": "LI", "440": "LT", "442": "LU", "428": "LV",
    "498": "MD", "499": "ME", "807": "MK", "470": "MT", "528": "NL", "578": "NO", "616": "PL",
    "620": "PT", "642": "RO", "688": "RS", "752": "SE", "705": "SI", "703": "SK", "804": "UA",
    "840": "US",
}  # fmt: skip

Point = tuple[float, float]
Ring = list[Point]


@dataclass(frozen=True)
class Region:
    """What a view shows: a longitude/latitude box and the projection's centre."""

    slug: str
    label: str
    west: float
    south: float
    east: float
    north: float
    width: float

    @property
    def centre(self) -> Point:
        return ((self.west + self.east) / 2, (self.south + self.north) / 2)


@dataclass(frozen=True)
class Shape:
    """One country as drawn in one view; `code` is None for a country the registry lacks."""

    code: str | None
    name: str
    path: str
    box: tuple[float, float, float, float]  # left, top, right, bottom in pixels

    @property
    def centre(self) -> Point:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    @property
    def tiny(self) -> bool:
        """Too small to click or see (Malta, Liechtenstein): the map adds a marker."""
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1]) < TINY_PX


@dataclass(frozen=True)
class View:
    region: Region
    width: int
    height: int
    shapes: tuple[Shape, ...]

    def codes(self) -> set[str]:
        return {s.code for s in self.shapes if s.code}


REGIONS = (
    Region("europe", "Europe", -25.0, 34.0, 45.0, 71.5, 800),
    Region("us", "United States", -125.0, 24.0, -66.0, 50.0, 300),
    Region("east-asia", "Korea and Japan", 124.0, 30.0, 146.0, 46.0, 300),
)
MIN_STEP_PX = 1.0
MARGIN_DEGREES = 35.0
TINY_PX = 8.0


def laea(centre: Point) -> Any:
    """Lambert azimuthal equal-area about `centre` (degrees); y grows northwards."""
    lon0, lat0 = (math.radians(v) for v in centre)
    sin0, cos0 = math.sin(lat0), math.cos(lat0)

    def project(lon: float, lat: float) -> Point:
        lam, phi = math.radians(lon) - lon0, math.radians(lat)
        cos_c = sin0 * math.sin(phi) + cos0 * math.cos(phi) * math.cos(lam)
        k = math.sqrt(2 / max(1 + cos_c, 1e-12))
        x = k * math.cos(phi) * math.sin(lam)
        y = k * (cos0 * math.sin(phi) - sin0 * math.cos(phi) * math.cos(lam))
        return (x, y)

    return project


def decode_arcs(topology: dict[str, Any]) -> list[Ring]:
    """TopoJSON's quantised, delta-encoded arcs as absolute longitude/latitude points."""
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs: list[Ring] = []
    for arc in topology["arcs"]:
        x = y = 0
        points: Ring = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def ring(arcs: Sequence[Ring], indices: Iterable[int]) -> Ring:
    """Stitch arcs into one ring; a negative index (~i) walks arc i backwards."""
    points: Ring = []
    for index in indices:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc[1:] if points else arc)
    return points


def polygons(geometry: dict[str, Any], arcs: Sequence[Ring]) -> Iterator[list[Ring]]:
    if geometry.get("type") == "Polygon":
        yield [ring(arcs, r) for r in geometry["arcs"]]
    elif geometry.get("type") == "MultiPolygon":
        for polygon in geometry["arcs"]:
            yield [ring(arcs, r) for r in polygon]


def _inside(region: Region, polygon: list[Ring]) -> bool:
    lons = [p[0] for p in polygon[0]]
    lats = [p[1] for p in polygon[0]]
    return not (
        max(lons) < region.west
        or min(lons) > region.east
        or max(lats) < region.south
        or min(lats) > region.north
    )


def _path(rings: Iterable[Ring], to_px: Any) -> tuple[str, tuple[float, float, float, float]]:
    """SVG path data, dropping points that land within MIN_STEP_PX of the last one kept."""
    parts: list[str] = []
    xs: list[float] = []
    ys: list[float] = []
    for points in rings:
        kept: list[Point] = []
        for point in points:
            x, y = to_px(point)
            if kept and abs(x - kept[-1][0]) + abs(y - kept[-1][1]) < MIN_STEP_PX:
                continue
            kept.append((x, y))
        if len(kept) < 3:
            continue
        xs.extend(x for x, _ in kept)
        ys.extend(y for _, y in kept)
        head, *rest = kept
        parts.append(
            f"M{head[0]:.0f},{head[1]:.0f}" + "".join(f"L{x:.0f},{y:.0f}" for x, y in rest) + "Z"
        )
    box = (min(xs), min(ys), max(xs), max(ys)) if xs else (0.0, 0.0, 0.0, 0.0)
    return "".join(parts), box


def _frame(region: Region) -> tuple[Any, int]:
    """A function from longitude/latitude to pixels that fits `region` into its width."""
    project = laea(region.centre)
    edge = [
        project(lon, lat)
        for lon in (region.west + i * (region.east - region.west) / 20 for i in range(21))
        for lat in (region.south, region.centre[1], region.north)
    ]
    xs, ys = [p[0] for p in edge], [p[1] for p in edge]
    scale = region.width / (max(xs) - min(xs))
    left, top = min(xs), max(ys)

    west, east = region.west - MARGIN_DEGREES, region.east + MARGIN_DEGREES
    south, north = region.south - MARGIN_DEGREES, region.north + MARGIN_DEGREES

    def to_px(point: Point) -> Point:
        # Far-off parts of a big neighbour (Siberia, Alaska) collapse onto the margin, outside
        # the frame, instead of costing the page thousands of invisible points.
        lon, lat = min(max(point[0], west), east), min(max(point[1], south), north)
        x, y = project(lon, lat)
        return ((x - left) * scale, (top - y) * scale)

    return to_px, round((max(ys) - min(ys)) * scale)


def view(region: Region, topology: dict[str, Any], arcs: Sequence[Ring]) -> View:
    """Every country that reaches into `region`, projected; seeded ones carry their code."""
    to_px, height = _frame(region)
    shapes: list[Shape] = []
    for geometry in topology["objects"]["countries"]["geometries"]:
        parts = [p for p in polygons(geometry, arcs) if _inside(region, p)]
        if not parts:
            continue
        path, box = _path((r for polygon in parts for r in polygon), to_px)
        if path:
            name = str(geometry.get("properties", {}).get("name", ""))
            code = ALPHA2.get(str(geometry.get("id")))
            shapes.append(Shape(code=code, name=name, path=path, box=box))
    shapes.sort(key=lambda s: (s.code is not None, s.code or s.name))  # seeded drawn on top
    return View(region=region, width=round(region.width), height=height, shapes=tuple(shapes))


@cache
def views() -> tuple[View, ...]:
    """The map's views, computed once per process from the vendored atlas."""
    topology = json.loads(ATLAS.read_text())
    arcs = decode_arcs(topology)
    return tuple(view(region, topology, arcs) for region in REGIONS)
