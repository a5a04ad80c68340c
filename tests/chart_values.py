"""The values.yaml of the Helm charts the program pins, vendored in tests/charts/ (each file's first line names its
source and commit), and the check that a release sets only values its chart reads: Helm hands an unknown key to no
template, so a misspelt value would be a setting accepted and ignored."""

from __future__ import annotations

from pathlib import Path

import yaml

CHARTS = Path(__file__).parent / "charts"


def vendored_values(chart: str, version: str) -> dict:
    return yaml.safe_load((CHARTS / f"{chart}-{version}-values.yaml").read_text())


def values_the_chart_ignores(values: dict, chart_values: dict,
                             free_maps: tuple[tuple[str, ...], ...] = ()) -> list[str]:
    """Dotted paths set in `values` that `chart_values` lacks. Where the chart takes a free map (its default is `{}`,
    or the path is in `free_maps`: extraArgs, nodeSelector, annotations), any key below it goes."""
    ignored: list[str] = []

    def walk(mine: dict, theirs: dict, prefix: tuple[str, ...]) -> None:
        for key, value in mine.items():
            path = (*prefix, key)
            if not isinstance(theirs, dict) or key not in theirs:
                ignored.append(".".join(path))
            elif isinstance(value, dict) and theirs[key] != {} and path not in free_maps:
                walk(value, theirs[key], path)

    walk(values, chart_values, ())
    return ignored
