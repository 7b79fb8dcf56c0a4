"""The per-evaluation series a run logs, declared once: name, label and range.

The engine reports its measures under these names; the store keeps them (the first
five as columns, any other in a JSON column, so a new series needs no schema change);
the app's curves, `grokterm show`, CSV export and claims look them up here. A new
measure is one line below. No torch."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Series:
    name: str
    label: str  # what an axis or a column header says
    lo: float | None = None  # the range a plot shows (None: from the data)
    hi: float | None = None
    log: bool = False  # spans decades: plotted as log10 of the value

    @property
    def is_accuracy(self) -> bool:
        return (self.lo, self.hi) == (0.0, 1.0)

    @property
    def axis(self) -> str:
        return f"log10 {self.label}" if self.log else self.label

    def shown(self, value: float | None) -> float:
        """The value as a plot draws it: NaN for none (a gap), log10 on a log axis."""
        if value is None or (self.log and value <= 0):
            return float("nan")
        return math.log10(value) if self.log else value


SERIES: dict[str, Series] = {
    s.name: s
    for s in (
        Series("train_loss", "train loss", 0.0),
        Series("train_acc", "train accuracy", 0.0, 1.0),
        Series("val_loss", "validation loss", 0.0),
        Series("val_acc", "validation accuracy", 0.0, 1.0),
        Series("norm", "parameter norm (L2)", 0.0),
        Series("train_add_acc", "train accuracy on addition (multitask)", 0.0, 1.0),
        Series("train_mem_acc", "train accuracy on memorization (multitask)", 0.0, 1.0),
        # the generalization circuit (grokterm.experiment.circuits, docs/circuits.md)
        Series("fourier_gini", "Fourier Gini of the embedding", 0.0, 1.0),
        Series("restricted_loss", "restricted loss (key frequencies only)", log=True),
        Series("excluded_loss", "excluded loss (key frequencies removed)", log=True),
        Series("softmax_collapse", "softmax collapse (train loss exactly 0 in float32)", 0.0, 1.0),
    )
}
CORE = ("train_loss", "train_acc", "val_loss", "val_acc", "norm")  # every run logs these


def names() -> list[str]:
    return list(SERIES)


def unknown(name: object) -> str | None:
    """What is wrong with a series name a preset gives, or None when it is known."""
    if isinstance(name, str) and name in SERIES:
        return None
    return f"expected one of the series {', '.join(SERIES)}, got {name!r}"


def label(name: str) -> str:
    return SERIES[name].label if name in SERIES else name
