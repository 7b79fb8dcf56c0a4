"""A sweep's figure and the paper's claims checked on it, assembled once for `grokterm
show` and the app: which runs (with those of pooled sweeps), which curves, and for a
view over other sweeps (fig 1's zones) the curves it is drawn from. No torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from grokterm import analysis, provenance
from grokterm.charts import Chart, chart, zones_chart
from grokterm.claims import ClaimResult, check_claims
from grokterm.figures import render
from grokterm.presets import Preset, parse_preset, tomllib
from grokterm.records import Run, Sweep
from grokterm.store import Store


class ReportError(ValueError):
    """A report that cannot be made from what is stored, as one line."""


@dataclass
class Report:
    title: str  # what is shown and how far it got ("" for a view over other sweeps)
    chart: Chart  # what the figure shows, for a renderer (grokterm.paper writes it to a file)
    figure: str  # the plot, as text with ANSI colours
    claims: list[ClaimResult]
    notes: list[str] = field(default_factory=list)  # what pooling added


def stored_preset(sweep: Sweep) -> Preset:
    """The preset a sweep was started from, as stored with it (PresetError if this
    version cannot read it)."""
    try:
        data = tomllib.loads(sweep.toml)
    except tomllib.TOMLDecodeError as err:
        raise ReportError(
            f"sweep {sweep.id}: its stored preset is not valid TOML ({err})"
        ) from None
    return parse_preset(data, sweep.preset_path, sweep.toml)


def report(
    store: Store, preset: Preset, sweep: Sweep | None, pooled: Sequence[Sweep] = (),
    size: tuple[int, int] = (100, 24), metric: str | None = None,
) -> Report:  # fmt: skip
    """The figure and claims of a preset: on its sweep, or for a view (fig 1) on the
    sweeps it is drawn from; each with the runs of the pooled sweeps that train the
    same settings. `metric` (a series) replaces the plot's: the averaged value of a
    final plot, the right-hand panel of a curves plot."""
    if preset.is_view:
        return _view(store, preset, pooled, size)
    if sweep is None:
        raise ReportError(f"{preset.path}: no sweep of this preset in {store.path}; run it first")
    p = store.progress(sweep.id)
    title = (
        f"sweep {sweep.id}: {preset.title} ({sweep.scale}), {p.finished} of {p.runs} runs finished"
    )
    runs, notes = pool_runs(store, sweep, store.runs(sweep.id), pooled)
    notes = [machines(store, s) for s in (sweep, *pooled)] + notes
    curves = store.run_points([r.id for r in runs]) if preset.plot["kind"] == "curves" else {}
    shown = replace(chart(preset.plot | ({"metric": metric} if metric else {}), runs, curves),
                    title=preset.title)  # fmt: skip
    return Report(title, shown, render(shown, size), check_claims(preset.claims, runs), notes)


def machines(store: Store, sweep: Sweep) -> str:
    """What trained a sweep, in one line (float32 curves repeat bit for bit only there)."""
    found = store.machines(sweep.id)
    if not found:
        return f"sweep {sweep.id}: machine not recorded (trained before grokterm recorded machines)"
    each = (f"{provenance.describe(m)} ({n} worker{'s' * (n > 1)})" for m, n in found.items())
    return f"sweep {sweep.id} trained on {'; '.join(each)}"


def pool_runs(
    store: Store, sweep: Sweep, runs: list[Run], pooled: Sequence[Sweep]
) -> tuple[list[Run], list[str]]:
    """The sweep's runs with those of other sweeps that train the same settings, and a
    line for each saying what it added."""
    notes = []
    for other in pooled:
        runs, n = analysis.pool(runs, store.runs(other.id))
        notes.append(f"sweep {sweep.id} + sweep {other.id} ({other.name}): {n.added} runs added, "
                     f"{n.present} already here, {n.other} of other settings left out")  # fmt: skip
    return runs, notes


def _view(store: Store, preset: Preset, pooled: Sequence[Sweep], size) -> Report:
    """Fig 1: D_crit(d) from the first source sweep, D_mem(d) from the second, and
    the zone each (d, n) falls in; each source's claims checked on it."""
    runs, notes = {}, []
    for name in preset.sources:
        sweep = store.sweep(name)
        if sweep is None:
            raise ReportError(f"{preset.path}: plot.sources: no sweep named {name!r} in "
                              f"{store.path}; run presets/{name}.toml first")  # fmt: skip
        runs[name], more = pool_runs(store, sweep, store.runs(sweep.id), pooled)
        notes += more
    crit_name, mem_name = preset.sources
    done = {name: [r for r in rs if r.status == "done"] for name, rs in runs.items()}
    crit = analysis.d_crit(
        analysis.aggregate([analysis.with_config(r, "d", "n_train") for r in done[crit_name]])
    )
    mem = {p.grid["d"]: p.mean for p in analysis.d_mem(done[mem_name])}
    ns = sorted({r.config.n_train for r in runs[crit_name]})
    shown = replace(zones_chart(crit, mem, ns), title=preset.title)
    figure = render(shown, (size[0], max(size[1] - 8, 10)))
    claims = [res for name in preset.sources
              for res in check_claims([c for c in preset.claims if c.source == name], runs[name])]  # fmt: skip
    return Report("", shown, figure, claims, notes)
