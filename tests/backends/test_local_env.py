"""Choosing where local runners run (issue 18): ``--env kernel|isolated`` on %fal_deploy and the CLI,
``deploy(..., env=...)``, FAL_NOTEBOOK_LOCAL_ENV as the default; what the deploy's first line says."""

from __future__ import annotations

import pytest

from fal_notebook.backends import deploy
from fal_notebook.backends.local import choose_env
from fal_notebook.capture.options import parse_words
from fal_notebook.cli import build_parser
from fal_notebook.errors import ConfigError
from fal_notebook.magics import DEPLOY


def test_the_environment_and_why(monkeypatch):
    monkeypatch.delenv("FAL_NOTEBOOK_LOCAL_ENV", raising=False)
    env, why = choose_env(None)
    assert env == "isolated" and why.startswith("the default; --env kernel (or FAL_NOTEBOOK_LOCAL_ENV=kernel)")
    assert "without network" in why
    assert choose_env("kernel") == ("kernel", "--env kernel")
    monkeypatch.setenv("FAL_NOTEBOOK_LOCAL_ENV", "kernel")
    assert choose_env(None) == ("kernel", "FAL_NOTEBOOK_LOCAL_ENV=kernel")
    assert choose_env("isolated") == ("isolated", "--env isolated")  # the flag wins over the variable
    monkeypatch.setenv("FAL_NOTEBOOK_LOCAL_ENV", "conda")
    with pytest.raises(ConfigError, match=r"env='conda' \(FAL_NOTEBOOK_LOCAL_ENV=conda\): use one of isolated, kernel"):
        choose_env(None)


def test_the_magic_and_the_cli_take_env():
    assert parse_words(DEPLOY, "web --env kernel").env == "kernel"
    assert parse_words(DEPLOY, "web").env is None
    assert build_parser().parse_args(["deploy", "web", "--env", "isolated"]).env == "isolated"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["deploy", "web", "--env", "conda"])


def test_fal_refuses_a_local_environment(project):
    with pytest.raises(ConfigError, match="env='kernel' chooses where local runners run"):
        deploy(project, target="fal", env="kernel")
