"""How numbers, run filters and legends read in figures, claims and the app: in words,
not Python's repr."""

from __future__ import annotations

from collections.abc import Sequence


def count(n: float) -> str:
    """A count as a person writes it: 819712 -> 820k, 1500000 -> 1.5M."""
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    if n >= 1e3:
        return f"{n / 1e3:.3g}k"
    return f"{n:.0f}"


def where(filters: dict | None) -> str:
    """A claim's run filter: {'split_ffn': True, 'n_mem': 0} -> 'split_ffn = True, n_mem = 0'."""
    if not filters:
        return "all runs"
    return ", ".join(f"{key} = {value}" for key, value in filters.items())


def tick(value: float) -> str:
    """A tick at a data value: whole numbers without a point, others to 3 figures."""
    if float(value).is_integer():
        return count(value) if abs(value) >= 1e4 else f"{value:.0f}"
    return f"{value:.3g}"


def rows(entries: Sequence[str], width: int, gap: str = "  ") -> list[list[str]]:
    """A legend's entries in lines of at most `width` characters (`gap` between two),
    broken only between entries; an entry longer than the width has a line of its own."""
    lines: list[list[str]] = [[]]
    used = 0
    for entry in entries:
        if lines[-1] and used + len(gap) + len(entry) > width:
            lines.append([])
            used = 0
        used += (len(gap) if lines[-1] else 0) + len(entry)
        lines[-1].append(entry)
    return lines


def wrap(entries: Sequence[str], width: int, gap: str = "  ") -> str:
    """A legend's entries `gap` apart, its lines broken only between two entries."""
    return "\n".join(gap.join(line) for line in rows(entries, width, gap))
