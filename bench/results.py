"""Figures every benchmark reports, gathered by `make bench` into bench/RESULTS.md.

A benchmark calls `record(...)` for each figure it prints. When `PRIMENET_BENCH_RESULTS` names a file (as `make
bench` sets it), each figure is appended to it as one JSON line; `bench/write_results.py` turns those lines into
RESULTS.md with the machine and the date. Run alone, a benchmark only prints.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

RESULTS_ENV = "PRIMENET_BENCH_RESULTS"


def record(bench: str, figure: str, measured: str, target: str = "none") -> None:
    """One line of the results table: `bench` is the script's name (e.g. "heartbeat.py"), `figure` what was
    measured and how, `measured` the figure with its unit (ratios beside their baselines), `target` the goal or
    "none"/"baseline"."""
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    line = {"bench": bench, "figure": figure, "measured": measured, "target": target, "at": time.time()}
    with Path(path).open("a", encoding="utf-8") as results:
        results.write(json.dumps(line) + "\n")
