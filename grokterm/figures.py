"""A paper figure (grokterm.charts) drawn in the terminal with plotext. No torch.

Each colour has a letter of its own (lower case for a line, upper case for the dotted
second series of the same colour, such as validation beside train), so that a figure
piped to a file still tells its lines apart; the legend sits under the plot, never over
the data. plotext cannot draw a log axis: log10 of x is plotted and the ticks named."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import plotext as plt
from rich.table import Table

from grokterm import wording
from grokterm.charts import Chart, Panel, chart, keep, zones_chart
from grokterm.claims import NO_DATA, REPRODUCED, UNCERTAIN, ClaimResult
from grokterm.records import MetricPoint, Run

LETTERS = "abcdefghjkmnpqrstuvwxyz"  # (no i, l, o: they read as 1 and 0)
# xterm-256 colours that read on a dark and on a light background alike
PALETTE = (33, 166, 34, 161, 92, 37, 130, 27, 70, 125, 31, 172)
_PLOTEXT = threading.Lock()  # plotext draws on one global figure; the app draws from threads


def draw(
    plot: dict, runs: Sequence[Run], curves: dict[int, list[MetricPoint]], size=(100, 28)
) -> str:
    """The figure as text (with ANSI colours) for the runs of one sweep."""
    return render(chart(plot, runs, curves), size)


def draw_zones(crit: dict[int, float | None], mem: dict[int, float], ns: Sequence[int],
               size=(100, 20)) -> str:  # fmt: skip
    """Fig 1: the measured D_crit(d) and D_mem(d), then the zone of every (d, n)."""
    return render(zones_chart(crit, mem, ns), size)


def render(shown: Chart, size: tuple[int, int]) -> str:
    with _PLOTEXT:
        return _render(shown, size)


def _render(shown: Chart, size: tuple[int, int]) -> str:
    width, height = size
    legend = _legend(shown, width)
    plt.main()  # the whole figure: a clear acts on the active subplot only
    plt.clear_figure()
    plt.limitsize(False, False)  # the size asked for, even past the terminal (or a pipe)
    plt.plotsize(width, max(height - len(legend), 8))
    plt.theme("clear")
    if len(shown.panels) > 1:
        plt.subplots(1, len(shown.panels))
    for col, panel in enumerate(shown.panels, 1):
        if len(shown.panels) > 1:
            plt.subplot(1, col)
        _panel(panel, width // len(shown.panels))
    lines = [plt.build().rstrip("\n"), *legend]
    if shown.zones:
        lines += ["", "zones (P progression, U ungrokking, S semi-grokking, G grokking,"
                  " ? a curve not measured at this d):"]  # fmt: skip
        z = shown.zones
        lines.append("n \\ d  " + " ".join(f"{d:>4}" for d in z.ds))
        for n in reversed(z.ns):
            lines.append(f"{n:>6} " + " ".join(f"{z.cells[n, d]:>4}" for d in z.ds))
    return "\n".join(lines)


def ink(colour: int) -> int:
    """A line's colour in the terminal's 256-colour palette."""
    return PALETTE[colour % len(PALETTE)]


def marker(colour: int, dotted: bool) -> str:
    letter = LETTERS[colour % len(LETTERS)]
    return letter.upper() if dotted else letter


def _panel(panel: Panel, width: int) -> None:
    plt.title(panel.title)  # (what upper case stands for is in the legend)
    plt.xlabel(panel.xlabel)
    if panel.ylabel:
        plt.ylabel(panel.ylabel)
    x_of = math.log10 if panel.xlog else float
    for line in panel.lines:
        idx = keep(len(line.xs), max(width - 10, 10))  # the same points of a line and its band
        if not idx:  # plotext fails on a series without points
            continue
        xs = [x_of(line.xs[i]) for i in idx]
        plt.plot(xs, [line.ys[i] for i in idx], color=ink(line.colour),
                 marker=marker(line.colour, line.dotted))  # fmt: skip
        if line.low is not None:  # the 95% band's edges
            for edge in (line.low, line.high):
                plt.scatter(xs, [edge[i] for i in idx], color=ink(line.colour), marker=".")
    for x, colour in panel.marks:
        plt.vline(x_of(x), color=ink(colour))
    if panel.ylim:
        plt.ylim(*panel.ylim)
    xs = [x for line in panel.lines for x in line.xs]
    if panel.ticks:
        plt.xticks([x_of(t) for t in panel.ticks], panel.tick_labels)
    elif panel.xlog and xs:  # the decades the data spans
        decades = range(math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs))) + 1)
        plt.xticks(list(decades), [f"1e{k}" for k in decades])


def _legend(shown: Chart, width: int) -> list[str]:
    """Under the plot: each colour's letters and name, wrapped between entries."""
    entries, seen = [], set()
    for panel in shown.panels:
        for line in panel.lines:
            if line.label is None or line.colour in seen:
                continue
            seen.add(line.colour)
            dotted = any(o.dotted and o.colour == line.colour for o in panel.lines)
            letters = marker(line.colour, False) + ("/" + marker(line.colour, True)) * dotted
            band = " (. 95% band)" if line.low is not None else ""
            entries.append((f"{letters} {line.label}{band}", ink(line.colour)))
    if not entries:
        return []
    for panel in shown.panels:
        if panel.dotted and any(line.dotted for line in panel.lines):
            entries.append((f"(upper case: {panel.dotted})", 0))  # 0: the terminal's own ink
    inks = iter(colour for _, colour in entries)  # (rows keeps the entries' order)
    lines = wording.rows([text for text, _ in entries], width, "   ")
    return ["   ".join(_coloured(text, next(inks)) for text in line) for line in lines]


def _coloured(text: str, colour: int) -> str:
    """Text in a 256-colour ink; 0: the terminal's own."""
    return f"\x1b[38;5;{colour}m{text}\x1b[0m" if colour else text


def claims_table(results: Sequence[ClaimResult]) -> Table:
    table = Table(title="the paper's claims", show_lines=False)
    table.add_column("claim")
    table.add_column("verdict", no_wrap=True)
    table.add_column("numbers")
    table.add_column("evidence")
    table.add_column("margin")
    colour = {REPRODUCED: "green", NO_DATA: "yellow", UNCERTAIN: "magenta"}
    for r in results:
        verdict = f"[{colour.get(r.status, 'red')}]{r.status}[/]"
        table.add_row(r.text, verdict, r.detail, r.evidence, r.margin)
    return table
