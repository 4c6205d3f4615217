"""``fal-notebook`` command line: parse arguments, call the Python API, print. Nothing else."""

from __future__ import annotations

import argparse
import sys

from .errors import FalNotebookError


def _export(args: argparse.Namespace) -> None:
    from .capture.notebook import export_notebook

    for project in export_notebook(args.notebook, out_dir=args.out):
        print(project.summary(), end="\n\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fal-notebook", description=__doc__.split(":")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    export = commands.add_parser("export", help="capture every %%%%fal_app cell of a notebook")
    export.add_argument("notebook")
    export.add_argument("--out", default=None, help="folder for the projects (default ./fal_apps)")
    export.set_defaults(func=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except FalNotebookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
