"""``fal-notebook`` command line: parse arguments, call the Python API, print. Nothing else."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, FalNotebookError

if TYPE_CHECKING:  # pragma: no cover
    from .backends import Deployment


def _export(args: argparse.Namespace) -> None:
    from .capture.notebook import export_notebook

    for project in export_notebook(args.notebook, out_dir=args.out):
        print(project.summary(), end="\n\n")


def _deploy(args: argparse.Namespace) -> None:
    from .jobs import deploy

    quiet = args.json
    deployment = deploy(
        args.app, target=args.target, env=args.env, progress=(lambda _line: None) if quiet else print, origin="cli"
    )
    if args.json:
        print(json.dumps(_deployment_json(deployment)))
    else:
        print(f"{deployment.name}: {deployment.status} on {deployment.target}")
        print(f"  endpoint id: {deployment.endpoint_id}")
        print(f"  url:         {deployment.url}")
        print(f"  queue url:   {deployment.queue_url}")


def _deployment_json(deployment: Deployment) -> dict[str, Any]:
    keys = ("name", "target", "endpoint_id", "url", "queue_url", "status", "path")
    return {k: getattr(deployment, k) for k in keys}


def _apps(args: argparse.Namespace) -> None:
    from .backends import list_apps

    rows = list_apps()
    if args.json:
        print(json.dumps(rows))
        return
    if not rows:
        print("No apps yet: capture one with %%fal_app in a notebook, or `fal-notebook export NOTEBOOK`.")
    for row in rows:
        where = f"{row['mode'] or '-':<7} {row['target'] or '-':<7}"
        line = f"{row['name']:<24} {where} {row['status']:<10} {row['endpoint_id'] or '-'}"
        note = row.get("crash_loop") or row.get("error")
        print(line + (f"  ({' '.join(str(note).split())[:160]})" if note else ""))
        for gpu in row.get("gpus") or []:
            print(f"    {gpu['line']}")
        if row.get("waiting"):
            print(f"    waiting: {row['waiting']}")


def _logs(args: argparse.Namespace) -> None:
    from .backends import get_deployment

    for line in get_deployment(args.name).logs(follow=args.follow):
        print(line, flush=True)


def _stop(args: argparse.Namespace) -> None:
    from .backends import get_deployment

    deployment = get_deployment(args.name)
    deployment.stop()
    print(f"{deployment.name}: stopped")


def _call(args: argparse.Namespace) -> None:
    from .client import connect

    plain_http = args.method is not None or args.query or args.form or args.file
    if args.input is None and not plain_http:
        raise ConfigError(
            '--input is needed for a call in fal\'s protocol (a JSON body), e.g. --input \'{"text": "hi"}\'; '
            "for a server's own routes give --method (GET, POST...) with --query, --form or --file."
        )
    arguments = None
    if args.input is not None:
        try:
            arguments = json.loads(args.input)
        except json.JSONDecodeError as exc:
            raise ConfigError(f'--input is not valid JSON ({exc}); e.g. --input \'{{"text": "hi"}}\'.') from None
    client = connect(args.endpoint_id)
    if plain_http:
        if args.queue:
            raise ConfigError(
                "--queue sends fal's protocol (a POST of --input): leave out --method, --query, --form, --file."
            )
        _print_response(
            client.request(
                args.method or "POST",
                args.path,
                params=_pairs(args.query, "--query"),
                json=arguments,
                data=dict(_pairs(args.form, "--form")) or None,
                files=[_file_part(spec) for spec in args.file] or None,
            )
        )
        return
    if args.queue:
        handle = client.submit(arguments, path=args.path)
        print(f"request {handle.request_id}", file=sys.stderr)
        for event in handle.iter_events(logs=True):
            for entry in getattr(event, "logs", None) or []:
                print(entry.get("message", entry), file=sys.stderr)
        output = handle.result()
    else:
        output = client.run(arguments, path=args.path)
    print(json.dumps(output, indent=2))


def _pairs(specs: list[str], flag: str) -> list[tuple[str, str]]:
    """``NAME=VALUE`` arguments of a repeatable flag."""
    pairs = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name:
            raise ConfigError(f"{flag} {spec!r}: write NAME=VALUE, e.g. {flag} q=hello.")
        pairs.append((name, value))
    return pairs


def _file_part(spec: str) -> tuple[str, tuple[str, bytes, str]]:
    """``FIELD=PATH`` of --file: the form field and the file's name, bytes and type."""
    import mimetypes
    from pathlib import Path

    ((field, path),) = _pairs([spec], "--file")
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"--file {spec!r}: cannot read {path} ({exc.strerror}).") from None
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return field, (Path(path).name, content, kind)


def _print_response(response: Any) -> None:
    """The app's answer: JSON indented, text as it is, other bytes raw; an error status fails the command."""
    kind = response.headers.get("content-type", "")
    if "json" in kind:
        try:
            print(json.dumps(response.json(), indent=2))
        except ValueError:
            print(response.text)
    elif kind.startswith("text/") or "charset" in kind or not response.content:
        print(response.text)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(response.content)
    if response.is_error:
        raise FalNotebookError(
            f"{response.request.method} {response.request.url} answered HTTP {response.status_code}."
        )


def _revisions(args: argparse.Namespace) -> None:
    from .backends.fal import revisions

    rows = revisions(args.name)
    if args.json:
        print(json.dumps(rows))
        return
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))


def _rollback(args: argparse.Namespace) -> None:
    from .backends.fal import rollback

    rollback(args.name, args.revision)
    print(f"{args.name}: now serving revision {args.revision}")


def _scale(args: argparse.Namespace) -> None:
    from .backends.fal import scale

    scale(args.name, min=args.min, max=args.max, keep_alive=args.keep_alive)
    print(f"{args.name}: scaling updated")


def _gateway(args: argparse.Namespace) -> None:
    from .backends.base import gpu_line
    from .gateway import GatewayInfo, gateway_status, start_gateway, stop_gateway

    def running(info: GatewayInfo) -> str:
        https = f"; HTTPS for fal_client on 127.0.0.1:{info.tls_port}" if info.tls_port else "; no HTTPS listener"
        return f"gateway running at {info.url} (pid {info.pid}, state in {info.home}{https})"

    if args.action == "start":
        print(running(start_gateway()))
    elif args.action == "stop":
        print("gateway stopped" if stop_gateway() else "gateway was not running")
    else:
        info = gateway_status()
        if args.json:
            print(json.dumps(dataclasses.asdict(info)))
        elif not info.running:
            print(f"gateway not running (would listen on {info.url}; state in {info.home})")
        else:
            print(running(info))
            for app in info.apps:
                print(f"  {app.name}: {app.status}")
            gpus = info.gpus.get("gpus") or []
            print(f"GPUs ({info.gpus.get('source')}):" + ("" if gpus else " none"))
            for gpu in gpus:
                holder = f"held by {gpu['runner']}" if gpu.get("runner") else "free"
                print(f"  {gpu_line(gpu)}: {holder}")


def _env(args: argparse.Namespace) -> None:
    import shlex

    from .gateway import client_environment

    for name, value in client_environment().items():
        print(f"export {name}={shlex.quote(value)}" if args.shell else f"{name}={value}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fal-notebook", description="Capture notebook cells as apps, deploy them, call them."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    export = commands.add_parser("export", help="capture every %%%%fal_app cell of a notebook")
    export.add_argument("notebook")
    export.add_argument("--out", default=None, help="folder for the projects (default ./fal_apps)")
    export.set_defaults(func=_export)

    deploy = commands.add_parser("deploy", help="deploy a captured app")
    deploy.add_argument("app", help="the app's name or its project folder")
    deploy.add_argument("--target", default="local", choices=["local", "docker", "fal"])
    deploy.add_argument(
        "--env",
        choices=["kernel", "isolated"],
        help="local runners in this Python environment as it is, or in a virtualenv built from requirements.txt "
        "(default: FAL_NOTEBOOK_LOCAL_ENV, else isolated)",
    )
    deploy.add_argument("--json", action="store_true", help="print the deployment as JSON")
    deploy.set_defaults(func=_deploy)

    apps = commands.add_parser("apps", help="captured and deployed apps")
    apps.add_argument("--json", action="store_true")
    apps.set_defaults(func=_apps)

    logs = commands.add_parser("logs", help="an app's logs")
    logs.add_argument("name")
    logs.add_argument("--follow", action="store_true")
    logs.set_defaults(func=_logs)

    stop = commands.add_parser("stop", help="stop an app's runners")
    stop.add_argument("name")
    stop.set_defaults(func=_stop)

    call = commands.add_parser("call", help="call an endpoint")
    call.add_argument("endpoint_id", help="local/<name>, <owner>/<app>, or a URL")
    call.add_argument("--path", default="/")
    call.add_argument("--input", help="the input as JSON (the request body)")
    call.add_argument("--queue", action="store_true", help="go through the queue (with logs)")
    call.add_argument("--method", type=str.upper, help="send a plain HTTP request with this method (GET, POST, ...)")
    call.add_argument("--query", action="append", default=[], metavar="NAME=VALUE", help="a query parameter")
    call.add_argument("--form", action="append", default=[], metavar="NAME=VALUE", help="a form field")
    call.add_argument("--file", action="append", default=[], metavar="FIELD=PATH", help="a file, sent as multipart")
    call.set_defaults(func=_call)

    revisions = commands.add_parser("revisions", help="an app's revisions on fal")
    revisions.add_argument("name")
    revisions.add_argument("--json", action="store_true")
    revisions.set_defaults(func=_revisions)

    rollback = commands.add_parser("rollback", help="serve an earlier revision on fal")
    rollback.add_argument("name")
    rollback.add_argument("revision")
    rollback.set_defaults(func=_rollback)

    scale = commands.add_parser("scale", help="change an app's scaling on fal now")
    scale.add_argument("name")
    scale.add_argument("--min", type=int, help="min_concurrency")
    scale.add_argument("--max", type=int, help="max_concurrency")
    scale.add_argument("--keep-alive", type=int)
    scale.set_defaults(func=_scale)

    gateway = commands.add_parser("gateway", help="the local gateway (start, stop, status)")
    gateway.add_argument("action", choices=["start", "stop", "status"])
    gateway.add_argument("--json", action="store_true", help="status as JSON")
    gateway.set_defaults(func=_gateway)

    env = commands.add_parser(
        "env", help="the environment that points unmodified fal_client code at the local gateway (prints its key)"
    )
    env.add_argument("--shell", action="store_true", help='print `export` lines: eval "$(fal-notebook env --shell)"')
    env.set_defaults(func=_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
        sys.stdout.flush()
    except FalNotebookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader left (`| head`): stop quietly, as other commands do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit fails no more
        return 141
    return 0


if __name__ == "__main__":
    sys.exit(main())
