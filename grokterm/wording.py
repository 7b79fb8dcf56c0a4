"""How numbers, run filters and legends read in figures, claims and the app: in words,
not Python's repr."""

from __future__ import annotations


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


def wrap(entries: list[str], width: int, gap: str = "  ") -> str:
    """A legend's entries `gap` apart, its lines broken only between two entries."""
    lines = [""]
    for entry in entries:
        if lines[-1] and len(lines[-1]) + len(gap) + len(entry) > width:
            lines.append("")
        lines[-1] += (gap if lines[-1] else "") + entry
    return "\n".join(lines)
