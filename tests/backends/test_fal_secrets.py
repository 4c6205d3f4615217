"""A recognisable key never shows up in anything a deploy or a failed deploy produces."""

from __future__ import annotations

import pytest

from fal_notebook.backends import fal as fal_target
from fal_notebook.backends.base import Deployment
from fal_notebook.backends.fal import FalBackend
from fal_notebook.credentials import find_credentials
from fal_notebook.errors import FalNotebookError

pytestmark = pytest.mark.fal_sdk

FAKE_KEY_ID = "fnbkeyid-0001"
FAKE_KEY_SECRET = "fnb-secret-Q7x9-DO-NOT-LEAK-5521"
FAKE_KEY = f"{FAKE_KEY_ID}:{FAKE_KEY_SECRET}"


def leaks(text: str) -> list[str]:
    return [part for part in (FAKE_KEY_SECRET, FAKE_KEY_ID) if part in text]


@pytest.fixture(params=["environment", "profile"])
def key_source(request, fal_env, monkeypatch):
    """The key in FAL_KEY, or only in fal's profile file (then it is in no environment variable
    the kernel has, and redaction must still know it)."""
    if request.param == "environment":
        monkeypatch.setenv("FAL_KEY", FAKE_KEY)
    else:
        (fal_env / ".fal").mkdir()
        (fal_env / ".fal" / "config.toml").write_text(f'[__internal__]\nprofile = "p"\n\n[p]\nkey = "{FAKE_KEY}"\n')
    assert find_credentials().key == FAKE_KEY
    return request.param


def test_nothing_a_deploy_produces_contains_the_key(project, key_source, fal_env, fake_cloud, tmp_path, monkeypatch):
    shown: list[str] = []
    backend = FalBackend(timeout=120)

    deployment = backend.deploy(project, progress=shown.append)  # the fake app prints its FAL_KEY
    shown += [repr(deployment), str(deployment.detail), repr(find_credentials()), str(find_credentials())]
    shown += deployment.logs()
    shown += list(fal_target.logs("text-stats", follow=True))
    shown += [str(fal_target.revisions("text-stats"))]
    assert any("FAL_KEY=***" in line for line in shown)  # the key was there to leak, and was caught

    for scenario in ("start_failure", "build_failure", "key_rejected"):
        fake_cloud.scenario(scenario)
        with pytest.raises(FalNotebookError) as err:
            backend.deploy(project, progress=shown.append)
        shown += [str(err.value), repr(err.value)]
    monkeypatch.delenv("FAKE_FAL_CLOUD")  # no cloud at all: the network failure
    with pytest.raises(FalNotebookError) as err:
        backend.deploy(project, progress=shown.append)
    shown += [str(err.value), repr(err.value), repr(Deployment.load("text-stats"))]

    assert leaks("\n".join(shown)) == []
    fal_config = fal_env / ".fal" / "config.toml"  # fal's own config: the one place a saved key belongs
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != fal_config and p != fake_cloud.log]
    assert any(p.name == "text-stats.json" for p in written)  # the Deployment record is among them
    assert any(p.name == "app.py" for p in written)
    assert {str(p): leaks(p.read_text(errors="replace")) for p in written if leaks(p.read_text(errors="replace"))} == {}
