"""Command line: each command wired to the services (its options: arguments.py), and
every error a user can cause as one line. Imports torch lazily, inside the commands
that train, so `grokterm --help` starts fast."""

from __future__ import annotations

import argparse
import signal
import sys

from grokterm.arguments import DEFAULT_DB, build_parser


class UsageError(Exception):
    """Bad input: printed as one line after `grokterm: `, exit status 2."""


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

            if args.backend == "ray" or args.address:  # Ray installed, the cluster there
                _check_slots(args)

            return run_app(args.db, args.presets, args.device, args.workers, args.engine,
                           args.precision, args.backend, args.address)  # fmt: skip
        return COMMANDS[args.command](args)
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


def _check_slots(args: argparse.Namespace) -> None:
    from grokterm import sweeps

    try:
        sweeps.slots(args.device, args.workers, engine=args.engine, precision=args.precision,
                     backend=args.backend, address=args.address)  # fmt: skip
    except sweeps.SweepError as err:
        raise UsageError(_option(str(err))) from None


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
                                 args.workers, args.cohort_size, preview=args.dry_run,
                                 engine=args.engine, precision=args.precision,
                                 backend=args.backend, address=args.address)  # fmt: skip
    except sweeps.SweepError as err:
        raise UsageError(_option(str(err))) from None
    console = Console()
    if args.dry_run:
        from grokterm.plan_report import print_plan

        print_plan(console, plan, args.verbose)
        return 0
    for line in plan.warnings:
        console.print(line, soft_wrap=True, markup=False)
    if plan.warnings and not args.yes and not _confirmed():
        raise UsageError(f"{args.preset}: not started (pass --yes to train anyway)")

    store = _open_store(args.db, write=True)
    sweep, created = sweeps.open_sweep(store, plan, args.fresh)
    if created:
        console.print(f"sweep {sweep.id}: {plan.preset.name} ({args.scale}), {len(plan.specs)} runs "
                      f"in {len(plan.cohorts)} cohorts, {len(plan.slots)} workers on {plan.kind}")  # fmt: skip
    else:
        p = store.progress(sweep.id)
        console.print(f"resuming sweep {sweep.id}: {p.finished} of {p.runs} runs finished")
    if not store.sweep_finished(sweep.id):
        try:
            workers = sweeps.start(store.path, sweep.id, plan.slots, plan.backend, plan.address)
        except sweeps.SweepError as err:
            raise UsageError(_option(str(err))) from None
        if plan.backend == "ray":
            console.print(_ray_line(workers, plan))
        # Ctrl-C while following is a flag the view sees, not an exception raised in the
        # middle of drawing it; while the workers stop, a second one ends the waiting.
        # SIGTERM (the app's x, for workers this process drives) asks them to stop.
        asked: list[int] = []
        signal.signal(signal.SIGINT, lambda *_: asked.append(1))
        signal.signal(signal.SIGTERM, lambda *_: workers.stop())
        try:
            outcome = follow(console, store, sweep, workers, lambda: bool(asked))
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if outcome == "interrupted":
            return _interrupted(console, workers, sweep.id)
        if outcome == "failing":
            raise UsageError(f"workers keep failing; see {workers.log_dir}/")
        if outcome == "stopped":
            console.print(f"sweep {sweep.id}: its workers were asked to stop (the app's x) "
                          "and saved their state. Run the same command again to resume.")  # fmt: skip
            return 130
        try:
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


def _ray_line(workers, plan) -> str:
    """Where a Ray sweep trains, and how long joining the cluster took."""
    nodes = len({slot.node for slot in plan.slots})
    where = f"the Ray cluster at {plan.address}" if plan.address else "a local Ray instance"
    return (
        f"ray: {len(plan.slots)} workers on {nodes} node(s) of {where}, joined in "
        f"{workers.started_s:.1f} s; worker logs in {workers.log_dir}/"
    )


def _confirmed() -> bool:
    """Asked in a terminal; never where no one can answer (a batch job: --yes)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    return input("train anyway? [y/N] ").strip().lower() in ("y", "yes")


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
    for name in ("workers", "device", "backend", "address", "engine", "precision"):
        if message.startswith(f"{name}: "):
            return f"--{message}"
    return message


def cmd_export(args: argparse.Namespace) -> int:
    from grokterm.export import ExportError, export_to

    option, target = ("--csv", args.csv) if args.csv else ("--out", args.out)
    form = args.format or ("parquet" if str(target).endswith(".parquet") else "csv")
    if args.csv and form != "csv":
        raise UsageError(f"--format: --csv writes CSV; use --out {target} for {form}")
    store = _open_store(args.db)
    sweep = _pick_sweep(store, args.sweep)
    try:
        n = export_to(store, sweep, target, args.metrics, form)
    except ExportError as err:
        raise UsageError(f"{option}: {err}") from None
    if target != "-":
        print(f"wrote {n} rows of sweep {sweep.id} ({sweep.name}) to {target} ({form})",
              file=sys.stderr)  # fmt: skip
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

    if args.out:
        _paper_target(args.out)
    store = _open_store(args.db)
    size = (args.width or min(shutil.get_terminal_size().columns, 120), args.height)
    if args.sweep and args.sweep.endswith(".toml"):
        # The file's plot and claims, on the sweep of exactly its runs at that scale, else the
        # newest of its name: a claim added or edited is checked without training again.
        preset = _load_preset(args.sweep)
        sweep = None if preset.is_view else sweeps.find_sweep(store, preset, args.scale)
        if sweep is None and not preset.is_view:
            others = [s for s in preset.scale_names
                      if s != args.scale and sweeps.find_sweep(store, preset, s)]  # fmt: skip
            hint = (
                f"; its {others[0]!r} sweep is there: --scale {others[0]}"
                if others
                else "; run it first"
            )
            raise UsageError(f"{args.sweep}: no sweep of this preset at scale {args.scale!r} "
                             f"in {store.path}{hint}")  # fmt: skip
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
    if args.out:
        from grokterm import paper

        figure, claims = paper.write(shown, args.out)
        print(f"wrote {figure} and {claims}", file=sys.stderr)
    return 0


def _paper_target(out: str) -> None:
    """Said before anything is drawn: a file the figure cannot be written to."""
    from grokterm.paper import PaperError, check_target

    try:
        check_target(out)
    except PaperError as err:
        raise UsageError(f"--out: {err}") from None


def cmd_relabel(args: argparse.Namespace) -> int:
    """For sweeps stored before the labelling rules changed; curves stay as they are.
    Prints each label that changed, with the numbers that decide the new one."""
    from grokterm.labels import dynamics, why

    store = _open_store(args.db, write=True)
    if args.all and args.sweep:
        raise UsageError("relabel: give a sweep or --all, not both")
    sweeps = (
        [c.sweep for c in store.sweeps()] if args.all else [_pick_sweep(store, args.sweep, None)]
    )
    for sweep in sweeps:
        runs = store.runs(sweep.id)
        curves = store.run_points([r.id for r in runs])
        labels = {i: info for i, points in curves.items() if (info := dynamics(points))}
        before = {r.id: (r.info.shown if r.info else r.label) or "none" for r in runs}
        changed = [r for r in runs if r.id in labels and before[r.id] != labels[r.id].shown]
        store.set_labels(labels)
        print(f"sweep {sweep.id} ({sweep.name}): {len(labels)} runs labelled, "
              f"{len(changed)} labels changed")  # fmt: skip
        for r in changed:
            print(f"  {r.key}: {before[r.id]} -> {labels[r.id].shown}: {why(labels[r.id])}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    store = _open_store(args.db)
    table = Table(box=None)
    columns = ("id", "name", "scale", "figure", "status", "created", "runs", "done", "diverged",
               "failed", "running")  # fmt: skip
    for col in columns:
        table.add_column(col)
    listed = store.sweeps()
    for c in listed:
        s = c.sweep
        table.add_row(str(s.id), s.name, s.scale, s.figure, c.status, s.created, str(c.runs), str(c.done),
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
    if args.backends:
        from grokterm.backends.cluster import ClusterError
        from grokterm.bench_backends import bench_backends

        try:
            return bench_backends(args.workers, args.rounds, lambda line: print(line, flush=True))
        except ClusterError as err:
            raise UsageError(f"bench --backends: {err}") from None
    import torch

    from grokterm.bench import bench_case
    from grokterm.experiment.trainer import configure_torch, pick_device

    configure_torch(args.threads)
    try:
        device = pick_device(args.device)
    except ValueError as err:
        print(f"grokterm: bench: --device: {err}", file=sys.stderr)
        return 2
    if args.check:
        if not device.startswith("cuda"):
            print(f"grokterm: bench --check: proves the GPU path and needs a CUDA GPU; torch "
                  f"{torch.__version__} sees none here (plain `grokterm bench` times the CPU)",
                  file=sys.stderr)  # fmt: skip
            return 2
        from grokterm import gpu_model
        from grokterm.gpu_check import run_check

        return run_check(device, out=lambda line: print(line, flush=True),
                         save_to=gpu_model.path())  # fmt: skip
    runs = args.runs or (44 if device.startswith("cuda") else 4)
    print(f"grokterm bench on {device} (torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads)", flush=True)  # fmt: skip
    for n in args.n:
        for d in args.d:
            result = bench_case(d, n, runs, args.steps, device, args.reference_runs,
                                engines=args.engine)  # fmt: skip
            print("\n".join(result.lines()), flush=True)
    return 0


COMMANDS = {"run": cmd_run, "export": cmd_export, "show": cmd_show, "relabel": cmd_relabel,
            "ls": cmd_ls, "bench": cmd_bench}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
