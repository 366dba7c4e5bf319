"""Turn the figures `make bench` gathered (JSON lines from `results.record`) into bench/RESULTS.md.

    write_results.py RESULTS_JSONL OUTPUT_MD [--failed NAME ...] [--skipped NAME ...]

The page names the machine (CPU model, cores, memory and kernel, read from /proc and `platform`) and the date, then
one table (bench, figure, measured, target) in the order the figures were recorded, then the benchmarks that failed
to run or were skipped, if any. A line that is not a figure is reported and left out, never silently dropped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

FIELDS = ("bench", "figure", "measured", "target")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def machine() -> list[str]:
    virtual = ""
    try:
        if "hypervisor" in Path("/proc/cpuinfo").read_text():
            virtual = " (virtual machine: the CPU flags name a hypervisor)"
    except OSError:
        pass
    return [
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores{virtual}",
        f"- memory: {memory_gib()}",
        f"- kernel: {platform.system()} {platform.release()} ({platform.machine()})",
        f"- Python {platform.python_version()}",
    ]


def cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def read_figures(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    figures: list[dict[str, str]] = []
    bad: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError:
            bad.append(f"line {number}: not JSON")
            continue
        if not isinstance(parsed, dict) or not all(isinstance(parsed.get(key), str) for key in FIELDS):
            bad.append(f"line {number}: not a figure (needs {', '.join(FIELDS)})")
            continue
        figures.append({key: parsed[key] for key in FIELDS})
    return figures, bad


def render(
    figures: list[dict[str, str]], bad: list[str], failed: list[str], skipped: list[str], now: str, note: str = ""
) -> str:
    out = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`bench/write_results.py`) on {now}. What each figure means: "
        "[README.md](README.md). Client and servers share the machine's cores; ratios against a baseline measured "
        "in the same run are the figures that carry over to other machines.",
        *(["", note, ""] if note else [""]),
        "Machine:",
        "",
        *machine(),
        "",
        "| bench | figure | measured | target |",
        "| --- | --- | --- | --- |",
    ]
    for f in figures:
        out.append(f"| `{cell(f['bench'])}` | {cell(f['figure'])} | {cell(f['measured'])} | {cell(f['target'])} |")
    if not figures:
        out.append("| - | no figures were recorded | - | - |")
    out.append("")
    if failed:
        names = ", ".join(f"`{n}`" for n in failed)
        out.append(f"Exited non-zero (a target not met, or it stopped early; its figures above say which): {names}.")
    else:
        out.append("Every benchmark ran to the end.")
    if skipped:
        out.append(f"Skipped (not in this tree): {', '.join(f'`{n}`' for n in skipped)}.")
    if bad:
        out.append(f"Lines of the results file left out: {'; '.join(bad)}.")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="the JSON lines file the benchmarks appended to")
    parser.add_argument("output", type=Path, help="the Markdown file to write (bench/RESULTS.md)")
    parser.add_argument("--failed", nargs="*", default=[], help="benchmarks that exited non-zero")
    parser.add_argument("--skipped", nargs="*", default=[], help="benchmarks listed but not present")
    parser.add_argument("--note", default="", help="a paragraph under the heading (how the run was made)")
    args = parser.parse_args()
    figures, bad = read_figures(args.results)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    args.output.write_text(render(figures, bad, args.failed, args.skipped, now, args.note), encoding="utf-8")
    print(f"{args.output}: {len(figures)} figures" + (f", failed: {' '.join(args.failed)}" if args.failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
