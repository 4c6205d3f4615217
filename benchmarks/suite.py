"""Run the benchmarks and print one table: each figure beside its baseline, measured in the same run."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime

from .harness import Row, Sizes, load_average, machine, table

#: Each benchmark: its module and function, imported only when it runs (``--only`` needs no more than
#: its own benchmarks' packages: the form's needs ipywidgets, the docker one a Docker engine).
BENCHMARKS: dict[str, str] = {
    "gateway": "gateway:rows",
    "clients": "clients:rows",
    "first-response": "deploy:first_response",
    "scale-out": "deploy:scale_out",
    "docker": "docker_target:rows",
    "form": "playground_form:rows",
}


def benchmark(name: str) -> Callable[[Sizes], list[Row]]:
    module, function = BENCHMARKS[name].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), function)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that every benchmark still runs")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument(
        "--envs",
        nargs="+",
        choices=["kernel", "isolated"],
        default=["kernel", "isolated"],
        help="the runner environments of the rows measured in each (isolated ones are built from the package index)",
    )
    args = parser.parse_args(argv)
    sizes = dataclasses.replace(Sizes.smoke() if args.smoke else Sizes(), environments=tuple(args.envs))
    started, load = time.monotonic(), load_average()
    rows, failed = [], []
    for name in args.only or BENCHMARKS:
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        try:
            rows += benchmark(name)(sizes)
        except Exception:
            traceback.print_exc()
            failed.append(name)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Benchmarks of {when} on {machine()}; load average {load} at the start, {load_average()} at the end")
    kind = "smoke sizes" if args.smoke else "full sizes"
    print(f"({kind}, {time.monotonic() - started:.0f} s; medians of interleaved runs)\n")
    print(table(rows))
    if failed:
        print(f"\nFailed: {', '.join(failed)} (tracebacks above)")
    return 1 if failed else 0
