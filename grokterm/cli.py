"""Command line: argument parsing and wiring only. Imports torch lazily, inside the
commands that train, so `grokterm --help` starts fast."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grokterm",
        description="Reproduce and explore Huang et al. 2024: grokking, double descent "
        "and emergent abilities as circuit competition.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from grokterm.bench import bench_case
    from grokterm.experiment.trainer import pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
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
