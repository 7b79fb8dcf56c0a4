"""The command line's options: one parser, its value checks and its help. Errors are
one line (`grokterm run: argument --cohort-size: ...`), exit status 2."""

from __future__ import annotations

import argparse

from grokterm.backends import BACKENDS
from grokterm.devices import ENGINES, FORMS, PRECISIONS

DEFAULT_DB = "runs.db"


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (and the command's --help named)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


EXAMPLES = """examples:
  grokterm run presets/demo.toml                 train the demo (about 2 minutes on 2 cores)
  grokterm run presets/fig2.toml --scale quick --dry-run   what it would train, and cost
  grokterm                                       the app: presets, sweeps, live curves
  grokterm show presets/fig3.toml --scale quick --db results/quick.db   a stored figure
  grokterm export --sweep 1 --csv runs.csv --metrics                   every curve as CSV"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("grokterm")
    except PackageNotFoundError:
        return "(not installed)"


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
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"grokterm {_version()}")
    parser.add_argument("--db", default=DEFAULT_DB, help=f"the app's store (default: {DEFAULT_DB})")
    parser.add_argument(
        "--presets", default="presets", help="the app's preset folder (default: presets)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="the app's workers: auto, cpu, cuda or cuda:I (default: auto, a GPU if any)",
    )
    parser.add_argument("--workers", type=positive, help="the app's workers per sweep")
    _engine_option(parser, "the app's workers' training step: ")
    _backend_option(parser, "the app's ")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="train a preset's sweep with background workers (resumable)")
    run.add_argument("preset", help="a preset file, e.g. presets/demo.toml")
    run.add_argument(
        "--scale", default="paper", help="a scale named in the preset (default: paper)"
    )
    _db_option(run)
    run.add_argument("--workers", type=positive, help="default: one per GPU, else one per CPU core")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:I (default: auto)")
    run.add_argument("--cohort-size", type=positive, help="most runs trained as one program")
    _engine_option(run)
    _backend_option(run)
    run.add_argument("--dry-run", action="store_true", help="show the plan; touch nothing")
    run.add_argument(
        "--verbose", action="store_true", help="with --dry-run: every cohort and its runs"
    )
    run.add_argument("--fresh", action="store_true", help="start a new sweep, do not resume")
    run.add_argument(
        "--yes", action="store_true",
        help="train even where the plan warns (memory beyond a worker's, more than a day)",
    )  # fmt: skip

    export = sub.add_parser("export", help="a sweep's runs (or metrics) as CSV or Parquet")
    _db_option(export)
    export.add_argument("--sweep", help="sweep id or name (default: the newest)")
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--csv", metavar="PATH", help="a CSV file, or - for stdout")
    target.add_argument("--out", metavar="PATH", help="a file (or -) in --format")
    export.add_argument("--format", choices=("csv", "parquet"),
                        help="of --out (default: parquet for a .parquet file, else csv)")  # fmt: skip
    export.add_argument("--metrics", action="store_true",
                        help="one row per (run, step), a column per logged series")  # fmt: skip

    show = sub.add_parser("show", help="draw a sweep's figure and check the paper's claims")
    show.add_argument(
        "sweep", nargs="?", help="sweep id or name, or a preset file (default: newest)"
    )
    _db_option(show)
    show.add_argument("--width", type=positive, help="plot width (default: the terminal's)")
    show.add_argument("--height", type=positive, default=24, help="plot height (default: 24)")
    show.add_argument(
        "--scale", default="paper", help="with a preset file: the scale whose sweep to show"
    )
    show.add_argument(
        "--metric", help="the series to plot: averaged in a final plot, beside accuracy in a "
        "curves plot (default: the preset's; val_acc or norm)",
    )  # fmt: skip
    show.add_argument("--out", metavar="FILE",
                      help="also write the figure for a paper (.png, .svg or .pdf, with "
                      "matplotlib) and its claims as FILE.claims.md")  # fmt: skip
    show.add_argument(
        "--with",
        dest="pool",
        action="append",
        default=[],
        metavar="SWEEP",
        help="pool in the runs of another sweep that trains the same settings (more seeds, "
        "more sizes); repeatable",
    )

    relabel = sub.add_parser(
        "relabel", help="label a sweep's runs again from their stored curves (current rules)"
    )
    relabel.add_argument("sweep", nargs="?", help="sweep id or name (default: newest)")
    relabel.add_argument("--all", action="store_true", help="every sweep in the database")
    _db_option(relabel)

    ls = sub.add_parser("ls", help="list sweeps with their progress")
    _db_option(ls)

    bench = sub.add_parser(
        "bench", help="throughput of the cohort engine against the plain reference"
    )
    bench.add_argument("--d", type=positive, nargs="+", default=[8, 32, 64], help="hidden sizes")
    bench.add_argument("--n", type=positive, nargs="+", default=[3000], help="training-set sizes")
    bench.add_argument("--runs", type=positive, help="cohort size (default: 4 on CPU, 44 on GPU)")
    bench.add_argument(
        "--steps", type=positive, default=30, help="timed steps per case (default: 30)"
    )
    bench.add_argument(
        "--reference-runs",
        type=positive,
        help="time the reference on this many runs (default: all)",
    )
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:I (default: auto)")
    bench.add_argument("--threads", type=positive, help="torch CPU threads (default: torch's)")
    bench.add_argument(
        "--check", action="store_true",
        help="on a GPU: the whole GPU check (exactness, resume, throughput, scan, memory, "
        "projections; about 5 minutes)",
    )  # fmt: skip
    bench.add_argument(
        "--engine", nargs="+", choices=FORMS, metavar="ENGINE",
        help="engines to time (default: every one the device runs)",
    )  # fmt: skip
    bench.add_argument(
        "--backends", action="store_true",
        help="instead: a 16-run sweep's wall time on the local backend against the Ray "
        'backend (a local Ray instance; pip install -e ".[ray]")',
    )  # fmt: skip
    bench.add_argument("--workers", type=positive, default=2, help="with --backends (default: 2)")
    bench.add_argument(
        "--rounds",
        type=positive,
        default=2,
        help="with --backends: alternating rounds (default: 2)",
    )
    return parser


def _engine_option(p: argparse.ArgumentParser, what: str = "") -> None:
    """--engine and --precision: how the workers' training step runs."""
    p.add_argument(
        "--engine",
        default="auto",
        choices=ENGINES,
        metavar="ENGINE",
        help=f"{what}{', '.join(ENGINES)} (default: auto, the fastest measured for each "
        "cohort: compiled for long CPU cohorts, else eager)",
    )
    p.add_argument(
        "--precision", default="float32", choices=PRECISIONS, metavar="PRECISION",
        help="float32 (default) or tf32: a GPU's faster matmuls, which round to about 1e-3 "
        "and can move when a run groks (docs/gpu.md)",
    )  # fmt: skip


def _backend_option(p: argparse.ArgumentParser, whose: str = "") -> None:
    """--backend and --address: where the workers train."""
    p.add_argument(
        "--backend", default="local", choices=BACKENDS, metavar="BACKEND",
        help=f"where {whose}workers train: local (processes on this machine, the default) or "
        'ray (Ray actors on a cluster; pip install -e ".[ray]")',
    )  # fmt: skip
    p.add_argument(
        "--address", metavar="HOST:PORT",
        help="with --backend ray: the cluster to join (auto: the one `ray start` made on this "
        "node); default: a local Ray instance on this machine",
    )  # fmt: skip


def _db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_DB, help=f"the SQLite store (default: {DEFAULT_DB})")
