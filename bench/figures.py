"""Numbers and tables: percentiles, busiest windows, the machine, Markdown tables on stdout."""

from __future__ import annotations

import math
import os
import platform
import sys
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` percentile (0-100) of `values`; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def busiest_window(times: Iterable[float], width: float) -> int:
    """The most `times` that fall in any window `width` seconds wide."""
    window: deque[float] = deque()
    most = 0
    for at in sorted(times):
        window.append(at)
        while window[0] <= at - width:
            window.popleft()
        most = max(most, len(window))
    return most


def ms(seconds: float) -> str:
    """Seconds as whole milliseconds, or a dash."""
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f}"


def secs(seconds: float, digits: int = 1) -> str:
    """Seconds with `digits` decimals, or a dash."""
    return "-" if math.isnan(seconds) else f"{seconds:.{digits}f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table, columns padded so it also reads well in a terminal."""
    cells = [[str(cell) for cell in headers], *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(cells[0]) + " |", rule, *(line(row) + " |" for row in cells[1:])])


def machine() -> str:
    """One line about where the numbers come from: CPUs, CPU model, memory, Python."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for entry in cpuinfo.read_text().splitlines():
            if entry.startswith("model name"):
                model = entry.partition(":")[2].strip()
                break
    memory = "? GB"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for entry in meminfo.read_text().splitlines():
            if entry.startswith("MemTotal:"):
                memory = f"{int(entry.split()[1]) / 1024 / 1024:.0f} GB"
                break
    return (
        f"{len(os.sched_getaffinity(0))} CPUs ({model}), {memory} RAM, "
        f"Python {platform.python_version()} on {sys.platform}"
    )


def say(text: str = "") -> None:
    """Print a line of the benchmark's report."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
