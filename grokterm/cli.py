"""Command line: argument parsing and wiring only. Imports torch lazily, inside the
commands that train, so `grokterm --help` starts fast."""

from __future__ import annotations

import argparse
import signal
import sys

DEFAULT_DB = "runs.db"


class UsageError(Exception):
    """Bad input: printed as one line after `grokterm: `, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (and the command's --help named)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    import sqlite3

    from grokterm.settings import SettingError, check
    from grokterm.store.connection import StoreError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check()
        if args.command is None:
            from grokterm.tui.app import run_app

            return run_app(args.db, args.presets, args.device, args.workers)
        return args.func(args)
    except (UsageError, SettingError, StoreError) as err:
        print(f"grokterm: {err}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as err:  # found damaged past the checks made on opening
        print(f"grokterm: {getattr(args, 'db', DEFAULT_DB)}: damaged database ({err})",
              file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt:
        print("grokterm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `grokterm export --csv - | head`
        sys.stderr.close()
        return 0


def positive(text: str) -> int:
    """An argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    parser.add_argument("--workers", type=positive, help="the app's workers per sweep")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="train a preset's sweep with background workers (resumable)")
    run.add_argument("preset", help="a preset file, e.g. presets/demo.toml")
    run.add_argument(
        "--scale", default="paper", help="a scale named in the preset (default: paper)"
    )
    _db_option(run)
    run.add_argument("--workers", type=positive, help="default: one per GPU, else one per CPU core")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:I")
    run.add_argument("--cohort-size", type=positive, help="most runs trained as one program")
    run.add_argument("--dry-run", action="store_true", help="show the plan; touch nothing")
    run.add_argument(
        "--verbose", action="store_true", help="with --dry-run: every cohort and its runs"
    )
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
    show.add_argument("--width", type=positive, help="plot width (default: the terminal's)")
    show.add_argument("--height", type=positive, default=24, help="plot height")
    show.add_argument(
        "--scale", default="paper", help="with a preset file: the scale whose sweep to show"
    )
    show.add_argument(
        "--metric", help="the series to plot: averaged in a final plot, beside accuracy in a "
        "curves plot (default: the preset's; val_acc or norm)",
    )  # fmt: skip
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
    bench.add_argument("--d", type=positive, nargs="+", default=[8, 32, 64], help="hidden sizes")
    bench.add_argument("--n", type=positive, nargs="+", default=[3000], help="training-set sizes")
    bench.add_argument("--runs", type=positive, help="cohort size (default: 4 on CPU, 44 on GPU)")
    bench.add_argument("--steps", type=positive, default=30, help="timed steps per case")
    bench.add_argument(
        "--reference-runs",
        type=positive,
        help="time the reference on this many runs (default: all)",
    )
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:I")
    bench.add_argument("--threads", type=positive, help="torch CPU threads (default: torch's)")
    bench.set_defaults(func=cmd_bench)
    return parser


def _db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_DB, help=f"the SQLite store (default: {DEFAULT_DB})")


def _open_store(path: str, write: bool = False):
    """The store, for reading only unless asked (reading a store never changes it)."""
    from grokterm.store import Store, check_file

    check_file(path, create=write)  # before any connection to it: see check_file
    return Store(path) if write else Store.reader(path)


def _pick_sweep(store, ref: str | None, option: str | None = "--sweep"):
    """A sweep by id or name (option: the option it was given with; None: positional)."""
    sweep = store.sweep(ref)
    if sweep is None and not ref:
        raise UsageError(f"{store.path}: no sweeps yet")
    if sweep is None:
        where = f"{option}: " if option else ""
        raise UsageError(f"{store.path}: {where}no sweep {ref!r} (grokterm ls --db {store.path} "
                         "lists them)")  # fmt: skip
    return sweep


def _load_preset(path: str):
    from grokterm.presets import PresetError, load_preset

    try:
        return load_preset(path)
    except PresetError as err:
        raise UsageError(str(err)) from None


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from grokterm import sweeps
    from grokterm.progress import follow, summary_table

    try:
        plan = sweeps.plan_sweep(_load_preset(args.preset), args.scale, args.device,
                                 args.workers, args.cohort_size)  # fmt: skip
    except sweeps.SweepError as err:
        raise UsageError(_option(str(err))) from None
    console = Console()
    for line in plan.warnings:
        console.print(line)
    if args.dry_run:
        from grokterm.plan_report import print_plan

        print_plan(console, plan, args.verbose)
        return 0

    store = _open_store(args.db, write=True)
    sweep, created = sweeps.open_sweep(store, plan, args.fresh)
    if created:
        console.print(f"sweep {sweep.id}: {plan.preset.name} ({args.scale}), {len(plan.specs)} runs "
                      f"in {len(plan.cohorts)} cohorts, {len(plan.slots)} workers on {plan.kind}")  # fmt: skip
    else:
        p = store.progress(sweep.id)
        console.print(f"resuming sweep {sweep.id}: {p.finished} of {p.runs} runs finished")
    if not store.sweep_finished(sweep.id):
        workers = sweeps.start(store.path, sweep.id, plan.slots)
        try:
            outcome = follow(console, store, sweep, workers)
            if outcome == "failing":
                raise UsageError(f"workers keep failing; see {workers.log_dir}/")
            if outcome == "stopped":
                console.print(f"sweep {sweep.id}: its workers were asked to stop (the app's x) "
                              "and saved their state. Run the same command again to resume.")  # fmt: skip
                return 130
            workers.wait()
        except KeyboardInterrupt:
            return _interrupted(console, workers, sweep.id)
    runs = store.runs(sweep.id)
    console.print(summary_table(runs))
    p = store.progress(sweep.id)
    done = p.finished - p.diverged - p.failed
    console.print(f"sweep {sweep.id} finished: {done} runs done, {p.diverged} diverged"
                  f"{f', {p.failed} failed' if p.failed else ''}. Export: grokterm export "
                  f"--db {args.db} --sweep {sweep.id} --csv out.csv")  # fmt: skip
    for run in (r for r in runs if r.status == "failed"):
        console.print(f"failed: {run.key}: {run.error}", soft_wrap=True, markup=False)
    return 1 if p.failed else 0


def _interrupted(console, workers, sweep_id: int) -> int:
    """Ctrl-C: the workers save their state and stop; a second Ctrl-C stops the waiting
    only (they are processes of their own and finish saving in the background)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until every worker has been asked
    workers.stop()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    console.print("stopping: workers are saving checkpoints ... (Ctrl-C again: do not wait)")
    try:
        workers.wait()
    except KeyboardInterrupt:
        console.print("not waiting: the workers finish saving in the background.")
    console.print(f"stopped. Run the same command again to resume sweep {sweep_id}.")
    return 130


def _option(message: str) -> str:
    """The service names its inputs; the command line names them as options."""
    for name in ("workers", "device", "backend"):
        if message.startswith(f"{name}: "):
            return f"--{message}"
    return message


def cmd_export(args: argparse.Namespace) -> int:
    from grokterm.export import ExportError, export_to

    store = _open_store(args.db)
    sweep = _pick_sweep(store, args.sweep)
    try:
        n = export_to(store, sweep, args.csv, args.metrics)
    except ExportError as err:
        raise UsageError(f"--csv: {err}") from None
    if args.csv != "-":
        print(f"wrote {n} rows of sweep {sweep.id} ({sweep.name}) to {args.csv}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    import shutil

    from rich.console import Console
    from rich.text import Text

    from grokterm import sweeps
    from grokterm.figures import claims_table
    from grokterm.presets import PresetError
    from grokterm.report import ReportError, report, stored_preset
    from grokterm.series import unknown as unknown_series

    store = _open_store(args.db)
    size = (args.width or min(shutil.get_terminal_size().columns, 120), args.height)
    if args.sweep and args.sweep.endswith(".toml"):
        # The file's plot and claims, on the sweep of exactly its runs at that scale, else the
        # newest of its name: a claim added or edited is checked without training again.
        preset = _load_preset(args.sweep)
        sweep = None if preset.is_view else sweeps.find_sweep(store, preset, args.scale)
        if sweep is None and not preset.is_view:
            raise UsageError(f"{args.sweep}: no sweep of this preset at scale {args.scale!r} "
                             f"in {store.path}; run it first")  # fmt: skip
    else:
        sweep = _pick_sweep(store, args.sweep, None)
        try:
            preset = stored_preset(sweep)
        except (PresetError, ReportError) as err:
            raise UsageError(str(err)) from None
    pooled = [_pick_sweep(store, ref, "--with") for ref in args.pool]
    if args.metric and (problem := unknown_series(args.metric)):
        raise UsageError(f"--metric: {problem}")
    try:
        shown = report(store, preset, sweep, pooled, size, args.metric)
    except ReportError as err:
        raise UsageError(str(err)) from None
    console = Console()
    if shown.title:
        console.print(shown.title)
    for line in shown.notes:
        console.print(line, soft_wrap=True)
    console.print(Text.from_ansi(shown.figure), soft_wrap=True)
    if shown.claims:
        console.print(claims_table(shown.claims))
    return 0


def cmd_relabel(args: argparse.Namespace) -> int:
    """For sweeps stored before the labelling rules changed; curves stay as they are."""
    from grokterm.analysis import dynamics

    store = _open_store(args.db, write=True)
    sweep = _pick_sweep(store, args.sweep, None)
    runs = store.runs(sweep.id)
    curves = store.run_points([r.id for r in runs])
    labels = {i: info for i, points in curves.items() if (info := dynamics(points))}
    changed = sum(1 for r in runs if r.id in labels and r.label != labels[r.id].label)
    store.set_labels(labels)
    print(f"sweep {sweep.id}: {len(labels)} runs labelled, {changed} labels changed")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    store = _open_store(args.db)
    table = Table(box=None)
    columns = ("id", "name", "scale", "figure", "created", "runs", "done", "diverged", "failed",
               "running")  # fmt: skip
    for col in columns:
        table.add_column(col)
    listed = store.sweeps()
    for c in listed:
        s = c.sweep
        table.add_row(str(s.id), s.name, s.scale, s.figure, s.created, str(c.runs), str(c.done),
                      str(c.diverged), str(c.failed), str(c.running))  # fmt: skip
    console = Console()
    console.print(table)
    for c in listed:
        for w in store.workers(c.sweep.id):
            if w.error:
                console.print(f"sweep {c.sweep.id} worker {w.id} ({w.status}): {w.error}"
                              f"{f'  log: {w.log}' if w.log else ''}", soft_wrap=True, markup=False)  # fmt: skip
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
