"""Command line of the benchmarks: options, running targets, printing their figures."""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .context import BenchContext, Options, bench_context
from .env import load_average, machine_lines
from .report import Figure, crashed


@dataclass(frozen=True)
class Target:
    number: int
    title: str
    run: Callable[[BenchContext], Figure]


def parse_options(argv: Sequence[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run, speed not judged"
    )
    parser.add_argument(
        "--skip-million",
        action="store_true",
        help="targets 6 and 7 (memory) use 100,000 recipients instead of 1,000,000 (not judged)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 2 when a judged target is missed"
    )
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    return Options(quick=bool(args.quick), skip_million=bool(args.skip_million or args.quick))


def say(line: str = "") -> None:
    print(line, flush=True)


def run_targets(targets: Sequence[Target], args: argparse.Namespace) -> int:
    """Run ``targets`` in one session; 1 if one crashed, 2 if ``--strict`` and one missed."""
    options = options_from(args)
    started = time.perf_counter()
    for line in machine_lines():
        say(line)
    mode = "quick (smoke run)" if options.quick else "full"
    if options.skip_million and not options.quick:
        mode += ", --skip-million"
    say(f"mode: {mode}")
    say()
    figures: list[Figure] = []
    with bench_context(options) as ctx:
        for target in targets:
            began = time.perf_counter()
            try:
                figure = target.run(ctx)
            except Exception as error:
                traceback.print_exc()
                figure = crashed(target.number, target.title, error)
            figure.details.append(f"(took {time.perf_counter() - began:.1f} s)")
            figures.append(figure)
            for line in figure.lines():
                say(line)
            say()
    say("summary:")
    for figure in figures:
        say(f"  [{figure.number}] {figure.figure} | target {figure.target} | {figure.verdict}")
    say(f"load average at end: {load_average()}")
    say(f"total time: {time.perf_counter() - started:.1f} s")
    if any(figure.figure == "CRASH" for figure in figures):
        return 1
    if args.strict and any(figure.judged and not figure.passed for figure in figures):
        return 2
    return 0


def main_for(target: Target, argv: Sequence[str] | None = None) -> int:
    """Entry point of one target's module."""
    args = parse_options(argv, f"Benchmark target {target.number}: {target.title}")
    return run_targets([target], args)
