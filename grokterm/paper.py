"""A sweep's figure for a paper: the chart the terminal draws (grokterm.charts), drawn
with matplotlib at a two-column paper's sizes (a panel is one column wide, 8 pt text),
and its claims as a Markdown table beside it. matplotlib is an optional extra and is
imported only here, when a figure is written. No torch."""

from __future__ import annotations

import textwrap
from pathlib import Path

from grokterm.charts import Chart, Panel
from grokterm.claims import ClaimResult
from grokterm.report import Report

INSTALL = 'figures for a paper need matplotlib: pip install -e ".[plots]"'
FORMATS = (".png", ".svg", ".pdf")
COLUMN_IN = 3.3  # one column of a two-column paper, in inches
HEIGHT_IN = 2.4
MARKERS = "os^vDPX*<>"  # one per colour: lines apart in greyscale too
ZONE_COLOURS = {"P": "#c6dbef", "U": "#fdd0a2", "S": "#fee391", "G": "#a1d99b", "?": "#f0f0f0"}


class PaperError(ValueError):
    """A figure that cannot be written as asked: one line for the user."""


def check_target(path: str | Path) -> Path:
    """The file to write, or PaperError: a known format, and matplotlib installed."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise PaperError(f"expected a file ending in {', '.join(FORMATS)}, got {str(path)!r}")
    if not path.parent.is_dir():
        raise PaperError(f"{path.parent} is not a directory")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PaperError(INSTALL) from None
    return path


def write(shown: Report, path: str | Path) -> tuple[Path, Path]:
    """The figure at `path` (its format from the suffix) and its claims at
    FILE.claims.md; both paths."""
    path = check_target(path)
    figure = _figure(shown.chart)
    figure.savefig(path, dpi=300)
    claims = path.with_suffix(".claims.md")
    claims.write_text(claims_markdown(shown.chart.title or shown.title, shown.claims))
    return path, claims


def claims_markdown(title: str, results: list[ClaimResult]) -> str:
    """The claims table as Markdown, one claim a row."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    rows = [f"# {cell(title)}" if title else "# the paper's claims", "",
            "| claim | verdict | numbers | evidence | margin |", "|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        parts = (r.text, r.status, r.detail, r.evidence, r.margin)
        rows.append("| " + " | ".join(cell(p) for p in parts) + " |")
    if not results:
        rows.append("| (this figure states no claims) | | | | |")
    return "\n".join(rows) + "\n"


def _figure(chart: Chart):
    from matplotlib.figure import Figure

    axes_count = len(chart.panels) + (chart.zones is not None)
    figure = Figure(figsize=(COLUMN_IN * axes_count, HEIGHT_IN), layout="constrained")
    with _style():
        axes = figure.subplots(1, axes_count, squeeze=False)[0]
        for ax, panel in zip(axes, chart.panels):
            _panel(ax, panel)
        if chart.zones is not None:
            _zones(axes[-1], chart)
        handles = {}
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, handle)
        if handles:  # outside the data, under the axes
            # as many entries a row as fit the figure's width (about 45 characters a column)
            wide = max(len(label) for label in handles) + 6
            ncol = max(1, min(len(handles), 45 * axes_count // wide))
            figure.legend(handles.values(), handles.keys(), loc="outside lower center",
                          ncol=ncol, frameon=False)  # fmt: skip
        if chart.title:  # wrapped to the figure's width (about 50 characters a column)
            figure.suptitle(textwrap.fill(chart.title, 50 * axes_count))
    return figure


def _style():
    import matplotlib

    return matplotlib.rc_context({
        "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
        "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.2,
        "lines.markersize": 3, "axes.spines.top": False, "axes.spines.right": False,
        "svg.fonttype": "none", "pdf.fonttype": 42,  # text stays text in SVG and PDF
    })  # fmt: skip


def _panel(ax, panel: Panel) -> None:
    import matplotlib

    colours = matplotlib.colormaps["tab10"].colors
    for line in panel.lines:
        colour = colours[line.colour % len(colours)]
        every = max(len(line.xs) // 12, 1)  # markers a few per line, not one per point
        ax.plot(line.xs, line.ys, color=colour, linestyle=":" if line.dotted else "-",
                marker=MARKERS[line.colour % len(MARKERS)], markevery=every,
                label=line.label)  # fmt: skip
        if line.low is not None:
            ax.fill_between(line.xs, line.low, line.high, color=colour, alpha=0.2, linewidth=0)
    for x, colour in panel.marks:  # softmax collapse
        ax.axvline(x, color=colours[colour % len(colours)], linewidth=0.6, linestyle="--")
    if panel.xlog:
        ax.set_xscale("log")
    if panel.ticks:
        ax.set_xticks(panel.ticks, panel.tick_labels)
        ax.minorticks_off()
    if panel.ylim:
        ax.set_ylim(*panel.ylim)
    ax.set_title(f"{panel.title} ({panel.dotted} dotted)" if panel.dotted else panel.title)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel("\n".join(textwrap.wrap(panel.ylabel, 24)))  # a long one would reach the title


def _zones(ax, chart: Chart) -> None:
    """Fig 1's zone map: one cell per (d, n), coloured and lettered by its zone."""
    from matplotlib.patches import Patch

    z = chart.zones
    for row, n in enumerate(z.ns):
        for col, d in enumerate(z.ds):
            letter = z.cells[n, d]
            ax.add_patch(_cell(col, row, ZONE_COLOURS.get(letter, "#ffffff")))
            ax.text(col, row, letter, ha="center", va="center")
    ax.set_xlim(-0.5, len(z.ds) - 0.5)
    ax.set_ylim(-0.5, len(z.ns) - 0.5)
    ax.set_xticks(range(len(z.ds)), [str(d) for d in z.ds])
    ax.set_yticks(range(len(z.ns)), [str(n) for n in z.ns])
    ax.set_xlabel("hidden size d")
    ax.set_ylabel("training pairs")
    ax.set_title("zones")
    names = {"P": "progression", "U": "ungrokking", "S": "semi-grokking", "G": "grokking"}
    ax.legend([Patch(color=ZONE_COLOURS[k]) for k in names], names.values(), frameon=False,
              loc="upper left", bbox_to_anchor=(1.0, 1.0))  # fmt: skip


def _cell(col: int, row: int, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle((col - 0.5, row - 0.5), 1, 1, color=colour)
