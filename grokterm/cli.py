"""Command line: argument parsing and wiring only. Imports torch lazily, inside the
commands that train, so `grokterm --help` starts fast."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

DEFAULT_DB = "runs.db"


class UsageError(Exception):
    """Bad input: printed as one line after `grokterm: `, exit status 2."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from grokterm.tui.app import run_app

        return run_app(args.db, args.presets, args.device, args.workers)
    try:
        return args.func(args)
    except UsageError as err:
        print(f"grokterm: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `grokterm export --csv - | head`
        sys.stderr.close()
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grokterm",
        # The app's options would otherwise swallow abbreviations meant for a
        # command (bench --d read as --db or --device).
        allow_abbrev=False,
        description="Reproduce and explore Huang et al. 2024: grokking, double descent "
        "and emergent abilities as circuit competition. Without a command: the app.",
    )
    parser.add_argument("--db", default=DEFAULT_DB, help=f"the app's store (default: {DEFAULT_DB})")
    parser.add_argument("--presets", default="presets", help="the app's preset folder")
    parser.add_argument(
        "--device", default="auto", help="the app's workers: auto, cpu, cuda or cuda:I"
    )
    parser.add_argument("--workers", type=int, help="the app's workers per sweep")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="train a preset's sweep with background workers (resumable)")
    run.add_argument("preset", help="a preset file, e.g. presets/demo.toml")
    run.add_argument(
        "--scale", default="paper", help="a scale named in the preset (default: paper)"
    )
    _db_option(run)
    run.add_argument("--workers", type=int, help="default: one per GPU, else one per CPU core")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:I")
    run.add_argument("--cohort-size", type=int, help="most runs trained as one program")
    run.add_argument("--dry-run", action="store_true", help="show the plan; touch nothing")
    run.add_argument("--fresh", action="store_true", help="start a new sweep, do not resume")
    run.set_defaults(func=cmd_run)

    export = sub.add_parser("export", help="a sweep's runs (or metrics) as CSV")
    _db_option(export)
    export.add_argument("--sweep", help="sweep id or name (default: the newest)")
    export.add_argument("--csv", required=True, metavar="PATH", help="output file, or - for stdout")
    export.add_argument("--metrics", action="store_true", help="one row per (run, step)")
    export.set_defaults(func=cmd_export)

    show = sub.add_parser("show", help="draw a sweep's figure and check the paper's claims")
    show.add_argument(
        "sweep", nargs="?", help="sweep id or name, or a preset file (default: newest)"
    )
    _db_option(show)
    show.add_argument("--width", type=int, help="plot width (default: the terminal's)")
    show.add_argument("--height", type=int, default=24, help="plot height")
    show.add_argument(
        "--scale", default="paper", help="with a preset file: the scale whose sweep to show"
    )
    show.add_argument(
        "--with",
        dest="pool",
        action="append",
        default=[],
        metavar="SWEEP",
        help="pool in the runs of another sweep that trains the same settings (more seeds, "
        "more sizes); repeatable",
    )
    show.set_defaults(func=cmd_show)

    relabel = sub.add_parser(
        "relabel", help="label a sweep's runs again from their stored curves (current rules)"
    )
    relabel.add_argument("sweep", nargs="?", help="sweep id or name (default: newest)")
    _db_option(relabel)
    relabel.set_defaults(func=cmd_relabel)

    ls = sub.add_parser("ls", help="list sweeps with their progress")
    _db_option(ls)
    ls.set_defaults(func=cmd_ls)

    bench = sub.add_parser(
        "bench", help="throughput of the cohort engine against the plain reference"
    )
    bench.add_argument("--d", type=int, nargs="+", default=[8, 32, 64], help="hidden sizes")
    bench.add_argument("--n", type=int, nargs="+", default=[3000], help="training-set sizes")
    bench.add_argument("--runs", type=int, help="cohort size (default: 4 on CPU, 44 on GPU)")
    bench.add_argument("--steps", type=int, default=30, help="timed steps per case")
    bench.add_argument(
        "--reference-runs", type=int, help="time the reference on this many runs (default: all)"
    )
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:I")
    bench.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    bench.set_defaults(func=cmd_bench)
    return parser


def _db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_DB, help=f"the SQLite store (default: {DEFAULT_DB})")


def _open_store(path: str, must_exist: bool = True):
    from grokterm.store import Store

    if must_exist and not Path(path).exists():
        raise UsageError(f"{path}: no such database (run a preset first, or pass --db)")
    return Store(path)


def _pick_sweep(store, ref: str | None, option: str = "--sweep") -> dict:
    sweep = store.sweep(ref)
    if sweep is None:
        raise UsageError(
            f"{store.path}: {option}: no sweep {ref!r}" if ref else f"{store.path}: no sweeps yet"
        )
    return sweep


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from grokterm.presets import PresetError, load_preset
    from grokterm.progress import SweepView, summary_table
    from grokterm.runner import Pool, plan_on, prepare_sweep, slots_kind, worker_slots

    try:
        preset = load_preset(args.preset).at_scale(args.scale)
        if preset.plot["kind"] == "zones":
            sources = " and ".join(preset.plot["sources"])
            raise UsageError(f"{args.preset}: plot: this figure is drawn from the {sources} sweeps; "
                             f"run those, then grokterm show {args.preset}")  # fmt: skip
        specs = preset.expand()
        slots = worker_slots(args.device, args.workers)
    except PresetError as err:
        raise UsageError(str(err)) from None
    except ValueError as err:
        raise UsageError(f"--device: {err}") from None
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers: expected a positive integer, got {args.workers}")
    cohorts, warnings = plan_on(specs, slots, args.cohort_size)
    console = Console()
    for line in warnings:
        console.print(line)
    if args.dry_run:
        print_plan(console, preset, args.scale, cohorts, slots)
        return 0

    store = _open_store(args.db, must_exist=False)
    sweep, created = prepare_sweep(store, preset, args.scale, cohorts, args.fresh)
    if created:
        console.print(f"sweep {sweep['id']}: {preset.name} ({args.scale}), {len(specs)} runs "
                      f"in {len(cohorts)} cohorts, {len(slots)} workers on {slots_kind(slots)}")  # fmt: skip
    else:
        p = store.progress(sweep["id"])
        console.print(f"resuming sweep {sweep['id']}: {p['finished']} of {p['runs']} runs finished")
    if not store.sweep_finished(sweep["id"]):
        pool = Pool(store, sweep["id"], slots)
        view = SweepView(store, sweep)
        pool.start()
        try:
            with Live(view.render(), console=console, refresh_per_second=4, transient=True) as live:
                while not store.sweep_finished(sweep["id"]):
                    pool.check()
                    if not pool.alive():
                        raise UsageError(f"workers keep failing; see {pool.log(0).parent}/")
                    live.update(view.render())
                    time.sleep(0.25)
            pool.wait()
        except KeyboardInterrupt:
            console.print("stopping: workers are saving checkpoints ...")
            pool.stop()
            console.print(f"stopped. Run the same command again to resume sweep {sweep['id']}.")
            return 130
    console.print(summary_table(store.runs(sweep["id"])))
    p = store.progress(sweep["id"])
    console.print(f"sweep {sweep['id']} finished: {p['finished'] - p['diverged']} runs done, "
                  f"{p['diverged']} diverged. Export: grokterm export --db {args.db} "
                  f"--sweep {sweep['id']} --csv out.csv")  # fmt: skip
    return 0


def print_plan(console, preset, scale: str, cohorts, slots) -> None:
    from grokterm.runner import cohort_bytes, estimate_seconds, gib

    runs = sum(len(c) for c in cohorts)
    run_steps = sum(s.config.steps for c in cohorts for s in c)
    console.print(f"{preset.name} ({scale}): {runs} runs in {len(cohorts)} cohorts, "
                  f"{run_steps:,} run-steps, {len(slots)} workers on {slots[0].device}")  # fmt: skip
    if slots[0].device == "cpu":  # the estimate is fitted to CPU step times
        seconds = estimate_seconds(cohorts, len(slots))
        console.print(
            f"estimated wall time on {len(slots)} CPU cores: {timedelta(seconds=int(seconds))}"
        )
    elif slots[0].memory:
        console.print(f"GPU memory per worker: {gib(slots[0].memory)} (cohorts sized to fit)")
    for i, cohort in enumerate(cohorts, 1):
        cfg = cohort[0].config
        console.print(f"  cohort {i}: task={cfg.task} d={cfg.d} layers={cfg.n_layers} "
                      f"steps={cfg.steps}, {len(cohort)} runs, ~{gib(cohort_bytes(cohort))}")  # fmt: skip
        for spec in cohort:
            console.print(f"    {spec.key}")


def cmd_export(args: argparse.Namespace) -> int:
    from grokterm.export import export_metrics, export_runs

    store = _open_store(args.db)
    sweep = _pick_sweep(store, args.sweep)
    write = export_metrics if args.metrics else export_runs
    if args.csv == "-":
        write(store, sweep, sys.stdout)
        return 0
    with open(args.csv, "w", newline="") as out:
        n = write(store, sweep, out)
    print(f"wrote {n} rows of sweep {sweep['id']} ({sweep['name']}) to {args.csv}", file=sys.stderr)
    return 0


def _preset_sweep(store, preset, scale: str) -> dict | None:
    digest = preset.at_scale(scale).digest()
    return store.find_sweep(preset.name, scale, digest) or store.find_sweep(preset.name, scale)


def cmd_show(args: argparse.Namespace) -> int:
    import shutil

    from rich.console import Console
    from rich.text import Text

    from grokterm.claims import check_claims
    from grokterm.figures import claims_table, draw, draw_zones
    from grokterm.presets import PresetError, load_preset, parse_preset, tomllib

    store = _open_store(args.db)
    size = (args.width or min(shutil.get_terminal_size().columns, 120), args.height)
    console = Console()
    if args.sweep and args.sweep.endswith(".toml"):
        try:
            preset = load_preset(args.sweep)
        except PresetError as err:
            raise UsageError(str(err)) from None
        # The file's plot and claims, on the sweep of exactly its runs at that scale, else
        # the newest of its name (an edited grid): a claim added or edited is checked
        # without training again, and a later sweep of other runs does not hide it.
        sweep = None if preset.plot["kind"] == "zones" else _preset_sweep(store, preset, args.scale)
    else:
        sweep = _pick_sweep(store, args.sweep)
        preset = parse_preset(tomllib.loads(sweep["toml"]), sweep["preset_path"], sweep["toml"])

    if preset.plot["kind"] == "zones":
        sources = {name: _pick_sweep(store, name) for name in preset.plot["sources"]}
        runs = {name: _pool(store, s, store.runs(s["id"]), args.pool, console)
                for name, s in sources.items()}  # fmt: skip
        crit_name, mem_name = preset.plot["sources"]
        from grokterm import analysis

        done = {name: [r for r in rs if r["status"] == "done"] for name, rs in runs.items()}
        crit = analysis.d_crit(analysis.aggregate(done[crit_name]))
        mem = {p.grid["d"]: p.mean for p in analysis.d_mem(done[mem_name])}
        ns = sorted({r["config"]["n_train"] for r in runs[crit_name]})
        console.print(
            Text.from_ansi(draw_zones(crit, mem, ns, (size[0], max(size[1] - 8, 10)))),
            soft_wrap=True,
        )
        results = [res for name in sources for res in check_claims(
            [c for c in preset.claims if c.get("source") == name], runs[name])]  # fmt: skip
    else:
        if sweep is None:
            raise UsageError(
                f"{args.sweep}: no sweep of this preset at scale {args.scale!r} in {store.path};"
                " run it first"
            )
        runs = store.runs(sweep["id"])
        p = store.progress(sweep["id"])
        console.print(f"sweep {sweep['id']}: {preset.title} ({sweep['scale']}), "
                      f"{p['finished']} of {p['runs']} runs finished")  # fmt: skip
        runs = _pool(store, sweep, runs, args.pool, console)
        curves = (
            store.run_curves([r["id"] for r in runs]) if preset.plot["kind"] == "curves" else {}
        )
        console.print(Text.from_ansi(draw(preset.plot, runs, curves, size)), soft_wrap=True)
        results = check_claims(preset.claims, runs)
    if results:
        console.print(claims_table(results))
    return 0


def _pool(store, sweep: dict, runs: list[dict], refs: list[str], console) -> list[dict]:
    """The sweep's runs with those of the --with sweeps that train the same settings."""
    from grokterm.analysis import pool

    for ref in refs:
        other = _pick_sweep(store, ref, "--with")
        runs, n = pool(runs, store.runs(other["id"]))
        console.print(f"sweep {sweep['id']} + sweep {other['id']} ({other['name']}): "
                      f"{n.added} runs added, {n.present} already here, "
                      f"{n.other} of other settings left out", soft_wrap=True)  # fmt: skip
    return runs


def cmd_relabel(args: argparse.Namespace) -> int:
    """For sweeps stored before the labelling rules changed; curves stay as they are."""
    from grokterm.analysis import dynamics

    store = _open_store(args.db)
    sweep = _pick_sweep(store, args.sweep)
    runs = store.runs(sweep["id"])
    curves = store.run_curves([r["id"] for r in runs])
    labels = {i: info.to_dict() for i, rows in curves.items() if (info := dynamics(rows))}
    changed = sum(1 for r in runs if r["id"] in labels and r["label"] != labels[r["id"]]["label"])
    store.set_labels(labels)
    print(f"sweep {sweep['id']}: {len(labels)} runs labelled, {changed} labels changed")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    store = _open_store(args.db)
    table = Table(box=None)
    for col in ("id", "name", "scale", "figure", "created", "runs", "done", "diverged", "running"):
        table.add_column(col)
    for s in store.sweeps():
        table.add_row(*(str(s[c] or 0) if c in ("done", "diverged", "running") else str(s[c] or "")
                        for c in ("id", "name", "scale", "figure", "created", "runs", "done",
                                  "diverged", "running")))  # fmt: skip
    Console().print(table)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from grokterm.bench import bench_case
    from grokterm.experiment.trainer import configure_torch, pick_device

    configure_torch(args.threads)
    try:
        device = pick_device(args.device)
    except ValueError as err:
        print(f"grokterm: bench: --device: {err}", file=sys.stderr)
        return 2
    runs = args.runs or (44 if device.startswith("cuda") else 4)
    print(f"grokterm bench on {device} (torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads)", flush=True)  # fmt: skip
    for n in args.n:
        for d in args.d:
            result = bench_case(d, n, runs, args.steps, device, args.reference_runs)
            print(result.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
