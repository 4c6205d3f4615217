"""IPython magics: parse the line, call the Python API, display the result. Nothing else."""

from __future__ import annotations

import os
from typing import Any

from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display

from . import backends, jobs
from .backends import Deployment
from .backends.local import LOCAL_ENVS
from .capture import capture
from .capture.kernel import running_cell
from .capture.options import ArgumentParser, parse_magic_line, parse_words
from .generate.project import AppProject

Argument = tuple[tuple[str, ...], dict[str, Any]]


def _parser(prog: str, *arguments: Argument) -> ArgumentParser:
    parser = ArgumentParser(prog=prog, add_help=False)
    for flags, kwargs in arguments:
        parser.add_argument(*flags, **kwargs)
    return parser


NAME: Argument = (("name",), {})
DEPLOY = _parser(
    "%fal_deploy",
    NAME,
    (("--target",), {"default": "local"}),
    (("--env",), {"choices": LOCAL_ENVS}),
    (("--no-wait",), {"action": "store_true"}),
)
PLAYGROUND = _parser("%fal_playground", NAME, (("--endpoint",), {"default": None}))
LOGS = _parser("%fal_logs", NAME, (("--follow",), {"action": "store_true"}))
STOP = _parser("%fal_stop", NAME)
ENV = _parser("%fal_env")
LOGIN = _parser("%fal_login", (("--save",), {"action": "store_true"}), (("--profile",), {}))


@magics_class
class FalMagics(Magics):
    @property
    def _shell(self) -> InteractiveShell:
        assert self.shell is not None  # set when IPython registers the magics
        return self.shell

    @cell_magic
    def fal_app(self, line: str, cell: str) -> AppProject | None:
        """%%fal_app [NAME] [options] — run the cell, then capture it as a deployable app."""
        parsed = parse_magic_line(line)
        imported: list[str] = []
        if parsed.run:
            with running_cell(cell, self._shell.user_ns, os.getcwd()) as run:
                result = self._shell.run_cell(run.source)
            if not result.success:
                return None
            imported = run.imported
        return capture(
            cell,
            parsed.name,
            namespace=self._shell.user_ns,
            dir=parsed.dir,
            force=parsed.force,
            imported=imported,
            **parsed.options,
        )

    @line_magic
    def fal_deploy(self, line: str) -> Deployment:
        """%fal_deploy NAME [--target local|docker|fal] [--env kernel|isolated] [--no-wait] — deploy a
        captured app as a job, with its steps, progress and a Cancel button shown as it happens (the fal
        panel follows it too); interrupting the kernel cancels it."""
        from .errors import DeployCancelled
        from .widgets.progress import DeployProgress

        args = parse_words(DEPLOY, line)
        if args.no_wait:
            return jobs.deploy(args.name, target=args.target, env=args.env, wait=False, origin="magic")
        view = DeployProgress(args.name, args.target)
        display(view)
        try:
            deployment = jobs.deploy(
                args.name, target=args.target, env=args.env, progress=view, origin="magic", on_start=view.attach
            )
        except DeployCancelled as exc:
            view.finish(str(exc), cancelled=True)
            raise
        except BaseException as exc:
            view.finish(str(exc) or type(exc).__name__)
            raise
        view.finish()
        return deployment

    @line_magic
    def fal_playground(self, line: str) -> Any:
        """%fal_playground NAME_OR_ENDPOINT [--endpoint /path] — the Playground widget."""
        from .widgets.playground import Playground

        args = parse_words(PLAYGROUND, line)
        return Playground(args.name, endpoint=args.endpoint)

    @line_magic
    def fal_apps(self, line: str) -> None:
        """%fal_apps — captured and deployed apps."""
        from .widgets.tables import apps_table

        display(apps_table(backends.list_apps()))

    @line_magic
    def fal_logs(self, line: str) -> None:
        """%fal_logs NAME [--follow] — the app's logs (--follow: until interrupted)."""
        args = parse_words(LOGS, line)
        try:
            for log_line in backends.get_deployment(args.name).logs(follow=args.follow):
                print(log_line)
        except KeyboardInterrupt:
            pass

    @line_magic
    def fal_stop(self, line: str) -> Deployment:
        """%fal_stop NAME — stop the app's runners."""
        deployment = backends.get_deployment(parse_words(STOP, line).name)
        deployment.stop()
        return deployment

    @line_magic
    def fal_env(self, line: str) -> None:
        """%fal_env — point fal_client in this kernel at the local gateway (FAL_RUN_HOST, FAL_QUEUE_RUN_HOST,
        SSL_CERT_FILE, FAL_KEY); the key is set, never shown."""
        from .gateway import apply_client_environment

        parse_words(ENV, line)
        print(apply_client_environment())

    @line_magic
    def fal_login(self, line: str) -> Any:
        """%fal_login [--save] [--profile P] — enter a fal key (kept for this session, or saved)."""
        from .widgets.login import fal_login

        args = parse_words(LOGIN, line)
        return fal_login(save=args.save, profile=args.profile)
