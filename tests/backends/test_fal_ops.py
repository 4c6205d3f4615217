"""Operations on deployed fal apps, through the real `fal` CLI against the fake cloud."""

from __future__ import annotations

import pytest

from fal_notebook.backends import fal as fal_target
from fal_notebook.backends.base import Deployment
from fal_notebook.backends.fal import FalBackend
from fal_notebook.errors import DeployError

pytestmark = pytest.mark.fal_sdk


@pytest.fixture
def deployed(project, fake_key, fake_cloud):
    """text-stats as a deploy leaves it: revision rev-1 in the (fake) cloud and in the record."""
    fake_cloud.log.write_text('{"call": "deploy", "app_name": "text-stats", "revision": "rev-1"}\n')
    url = "https://fal.run/test-user/text-stats"
    Deployment(
        "text-stats",
        "fal",
        "test-user/text-stats",
        url,
        url.replace("//", "//queue.", 1),
        "ready",
        str(project.path),
        {
            "revision": "rev-1",
            "app_name": "text-stats",
            "environment": None,
            "team": None,
            "scaling": {"max_concurrency": 2},
        },
    ).save()
    return Deployment.load("text-stats")


def test_revisions_come_from_fal_apps_list_rev(deployed, project, fake_cloud):
    FalBackend().deploy(project, progress=lambda line: None)
    assert Deployment.load("text-stats").detail.revision == "rev-2"
    revisions = fal_target.revisions("text-stats")
    assert [r["Revision"] for r in revisions] == ["rev-1", "rev-2"]
    assert revisions[0]["Machine Type"] == "S"


def test_rollback_sets_the_revision_and_updates_the_record(deployed, fake_cloud):
    record = fal_target.rollback("text-stats", "rev-1")
    assert fake_cloud.calls("set_rev") == [
        {"call": "set_rev", "app_name": "text-stats", "revision": "rev-1", "environment": None}
    ]
    assert record.detail.revision == "rev-1" == Deployment.load("text-stats").detail.revision
    assert record.detail.module_source is None


def test_scale_min_max(deployed, fake_cloud):
    fal_target.scale("text-stats", min=1, max=5)
    assert fake_cloud.calls("scale")[-1] == {
        "call": "scale",
        "app_name": "text-stats",
        "min_concurrency": 1,
        "max_concurrency": 5,
    }
    assert Deployment.load("text-stats").detail.scaling["max_concurrency"] == 5
    with pytest.raises(DeployError, match="Nothing to change"):
        fal_target.scale("text-stats")


def test_logs_are_read_from_the_apps_runners_and_redacted(deployed, fake_key):
    lines = deployed.logs()
    assert lines == [
        "2026-11-28T12:00:00 [info] debug: FAL_KEY=***",
        "2026-11-28T12:00:01 [info] setup(): model loaded",
    ]
    assert list(fal_target.logs("text-stats", follow=True)) == [
        "2026-11-28T12:00:01 [info] setup(): model loaded",
        "2026-11-28T12:00:00 [info] debug: FAL_KEY=***",
    ]


def test_stop_scales_to_zero_and_stops_the_runners(deployed, fake_cloud):
    deployed.stop()
    assert fake_cloud.calls("scale")[-1] == {"call": "scale", "app_name": "text-stats", "min_concurrency": 0}
    assert fake_cloud.calls("stop_runner") == [{"call": "stop_runner", "runner_id": "runner-1"}]
    assert Deployment.load("text-stats").status == "stopped"


def test_refresh_sees_a_running_runner_of_the_revision(deployed):
    deployed.status = "deploying"
    assert FalBackend().refresh(deployed).status == "ready"


def test_operations_without_network_say_so(project, fake_key):
    with pytest.raises(DeployError, match="fal could not be reached from this machine, so `fal apps list-rev`"):
        fal_target.revisions("text-stats")


def test_refresh_of_a_ready_app_asks_fal_nothing(deployed, monkeypatch):
    monkeypatch.setattr(fal_target, "run_fal", lambda *a, **k: pytest.fail("refresh ran fal"))
    assert FalBackend().refresh(deployed).status == "ready"
