"""The case map as a picture: country shapes shaded by how many cases each has opened.

The shapes come from `geo`; here they meet the counts. Shading is relative to the busiest
country in the current choice (platform and status), in a few steps, so the darkest country is
always the one with most cases; every country's count is also in its link's accessible name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.registry.web.dashboard import geo

LEVELS = 4


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    path: str
    cases: int
    level: int
    marker: tuple[float, float] | None  # where to draw a dot for a country too small to see

    @property
    def label(self) -> str:
        return f"{self.name} ({self.code}): {self.cases} case{'' if self.cases == 1 else 's'}"


@dataclass(frozen=True)
class Panel:
    slug: str
    label: str
    width: int
    height: int
    land: tuple[str, ...]
    countries: tuple[Country, ...]


@dataclass(frozen=True)
class Step:
    level: int
    low: int
    high: int


def level(cases: int, busiest: int) -> int:
    """0 for none, else 1..LEVELS in equal steps up to the busiest country."""
    if cases <= 0 or busiest <= 0:
        return 0
    return max(1, min(LEVELS, math.ceil(LEVELS * cases / busiest)))


def legend(busiest: int) -> list[Step]:
    """The count range each shade stands for; shades no count can reach are left out."""
    steps = []
    for n in range(1, LEVELS + 1):
        low = math.floor((n - 1) * busiest / LEVELS) + 1
        high = math.floor(n * busiest / LEVELS)
        if low <= high:
            steps.append(Step(level=n, low=low, high=high))
    return steps


def case_map(counts: dict[str, int]) -> list[Panel]:
    """Europe and the insets, each seeded country shaded by its count in `counts`."""
    busiest = max(counts.values(), default=0)
    panels = []
    for view in geo.views():
        land = tuple(s.path for s in view.shapes if s.code is None)
        countries = tuple(
            Country(
                code=s.code,
                name=s.name,
                path=s.path,
                cases=counts.get(s.code, 0),
                level=level(counts.get(s.code, 0), busiest),
                marker=s.centre if s.tiny else None,
            )
            for s in view.shapes
            if s.code is not None
        )
        region = view.region
        panels.append(Panel(region.slug, region.label, view.width, view.height, land, countries))
    return panels
