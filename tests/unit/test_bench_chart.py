"""duoctl bench: the chart is a PNG of the run (Agg, no display)."""

from __future__ import annotations

import struct
from pathlib import Path

from duoctl.bench import chart
from duoctl.bench.load import Ramp
from duoctl.bench.recommend import ServingFacts
from duoctl.bench.results import PathResult
from duoctl.bench.run import assemble
from duoctl.bench.samples import Sample
from duoctl.bench.stats import first_request, knee, level_result

PNG = b"\x89PNG\r\n\x1a\n"


def run_with(levels_latency: dict[int, float | None]):
    levels = []
    for n, latency in levels_latency.items():
        if latency is None:
            samples = [Sample(n, 0.0, None, error="connection")] * 3
        else:
            samples = [Sample(n, 0.0, latency, ttft=0.1, tokens=30)] * 10
        levels.append(level_result(n, samples, 5.0))
    first = first_request(Sample(0, 0.0, 1.0), levels)
    path = PathResult("model", "http://m.test", True, 1.5, first, levels, knee(levels, 1.5), None)
    return assemble("lab", ServingFacts("ollama"), "m", Ramp(), [path])


def size_of(file: Path) -> tuple[int, int]:
    data = file.read_bytes()
    assert data[:8] == PNG
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND"
    return width, height


def test_chart_is_a_valid_png(tmp_path: Path) -> None:
    file = chart.draw(run_with({1: 0.4, 2: 0.6, 4: 1.0, 8: 2.0}), tmp_path / "chart.png")
    width, height = size_of(file)
    assert width >= 800 and height >= 300


def test_chart_of_levels_without_successes(tmp_path: Path) -> None:
    file = chart.draw(run_with({1: 0.4, 2: None}), tmp_path / "sub" / "chart.png")
    size_of(file)
