"""Deploy jobs through the REST routes, against a real gateway: a deploy from a notebook's unsaved
content streams its steps to ready, the app answers, its logs follow, it stops; a slow rollout is
cancelled (the serving revision stays); a second deploy of the same app is refused while one runs;
the live view pushes snapshots and stops its work when its last follower leaves."""

import json
import threading

import httpx
import pytest
from tornado.httpclient import HTTPClientError

from fal_notebook.jobs import KEPT
from tests.polling import wait_for_async

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SERVER_CELL = (
    "from fastapi import FastAPI\n\napp = FastAPI()\n\n@app.post('/')\ndef echo(body: dict) -> dict:\n    return body\n"
)
FAST_CMD = "%%fal_app {name} --auth public --cmd 'python -m http.server $PORT'\nx = 1\n"
SLOW_CMD = "sleep 60 && python -m http.server $PORT"


@pytest.fixture(autouse=True)
def kernel_env(gateway, monkeypatch):
    """Runners in the test's own environment (nothing to build), on the module's gateway."""
    monkeypatch.setenv("FAL_NOTEBOOK_LOCAL_ENV", "kernel")


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"fal_notebook": True}}}


async def fetch_json(jp_fetch, *parts, method="GET", body=None, **kwargs):
    response = await jp_fetch(
        "fal-notebook", *parts, method=method, body=None if body is None else json.dumps(body), **kwargs
    )
    return json.loads(response.body)


def sse(text: str) -> list[tuple[str, dict]]:
    """(event name, data) of a Server-Sent Events text."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "data" in fields:
            events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


async def follow_job(jp_fetch, job_id, since=0):
    response = await jp_fetch(
        "fal-notebook", "jobs", job_id, "events", params={"since": str(since)}, request_timeout=120
    )
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return [data for name, data in sse(response.body.decode()) if name == "progress"]


async def stream_for(jp_fetch, *parts, seconds, params=None):
    """What a streaming route sends in ``seconds`` (then the client goes away)."""
    chunks = []
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("fal-notebook", *parts, params=params, streaming_callback=chunks.append, request_timeout=seconds)
    assert error.value.code == 599  # our own timeout: the stream was still open
    return sse(b"".join(chunks).decode())


async def test_deploy_from_unsaved_notebook_content_streams_progress_to_ready(
    jp_fetch, jp_root_dir, jp_serverapp, gateway
):
    cells = [
        {"cell_type": "markdown", "source": "# not saved yet"},
        {"cell_type": "code", "source": "GREETING = 'hello'\n"},
        {"cell_type": "code", "source": "%%fal_app echo-web --auth public\n" + SERVER_CELL},
    ]
    (jp_root_dir / "work").mkdir()  # the notebook itself was never saved
    job = await fetch_json(
        jp_fetch,
        "apps",
        "echo-web",
        "deploy",
        method="POST",
        body={"target": "local", "env": "kernel", "notebook": {"path": "work/unsaved.ipynb", "cells": cells}},
    )
    assert job["state"] == "running" and job["steps"] == ["capture", "environment", "runners", "ready"]
    events = await follow_job(jp_fetch, job["id"])
    chosen = [e["message"] for e in events if e.get("message", "").startswith("Runners use ")]
    assert len(chosen) == 1 and "the kernel's Python environment" in chosen[0] and chosen[0].endswith(": --env kernel.")
    end = events[-1]
    assert end["kind"] == "end" and end["state"] == "ready", end
    assert end["deployment"]["endpoint_id"] == "local/echo-web"
    steps = [e["step"] for e in events if e["kind"] == "step"]
    assert steps[0] == "capture" and "runners" in steps and steps[-1] == "ready"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert (jp_root_dir / "work" / "fal_apps" / "echo-web" / "server.py").is_file()

    later = await follow_job(jp_fetch, job["id"], since=len(events) - 1)
    assert later == [end]  # a follower that comes back resumes where it was

    with httpx.Client(base_url=gateway.base, timeout=30) as client:
        assert client.post("/local/echo-web", json={"hi": 1}).json() == {"hi": 1}

    apps = {a["name"]: a for a in await fetch_json(jp_fetch, "apps")}
    row = apps["echo-web"]
    assert (row["status"], row["target"], row["relpath"]) == ("ready", "local", "work/fal_apps/echo-web")
    assert row["url"] == f"{gateway.base}/local/echo-web" and row["runners"] >= 1 and row["queued"] == 0

    logs = await fetch_json(jp_fetch, "apps", "echo-web", "logs")
    assert any("is serving" in line for line in logs["lines"])

    streamed = await stream_for(jp_fetch, "apps", "echo-web", "logs", seconds=2, params={"follow": "1"})
    assert any(name == "line" and "is serving" in data for name, data in streamed)
    await wait_for_async(
        lambda: not any(t.name == "fal-notebook-logs" for t in threading.enumerate()),
        what="the log follower's thread to end after the client left",
    )

    stopped = await fetch_json(jp_fetch, "apps", "echo-web", "stop", method="POST", body={})
    assert stopped["status"] == "stopped"
    assert {a["name"]: a["status"] for a in await fetch_json(jp_fetch, "apps")}["echo-web"] == "stopped"


async def test_a_cancelled_redeploy_leaves_the_serving_revision(jp_fetch, jp_root_dir, gateway):
    nb = {"path": "cancel.ipynb", "cells": [{"cell_type": "code", "source": FAST_CMD.format(name="slow-web")}]}
    first = await fetch_json(jp_fetch, "apps", "slow-web", "deploy", method="POST", body={"notebook": nb})
    assert (await follow_job(jp_fetch, first["id"]))[-1]["state"] == "ready"

    slow_cell = f"%%fal_app slow-web --auth public --cmd '{SLOW_CMD}'\nx = 1\n"  # the cell was edited
    nb["cells"] = [{"cell_type": "code", "source": slow_cell}]
    second = await fetch_json(jp_fetch, "apps", "slow-web", "deploy", method="POST", body={"notebook": nb})
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("fal-notebook", "apps", "slow-web", "deploy", method="POST", body="{}")
    assert error.value.code == 409 and second["id"] in json.loads(error.value.response.body)["message"]

    await wait_for_async(lambda: gateway.info("slow-web")["deploying"] is not None, what="the rollout to start")
    cancelled = await fetch_json(jp_fetch, "jobs", second["id"], "cancel", method="POST", body={})
    assert cancelled["cancelling"] is True
    end = (await follow_job(jp_fetch, second["id"]))[-1]
    assert end["state"] == "cancelled" and "Revision 1 keeps serving" in end["error"]
    info = gateway.info("slow-web")
    assert info["status"] == "ready" and info["revision"] == 1 and info["deploying"] is None
    with httpx.Client(base_url=gateway.base, timeout=30) as client:
        assert client.get("/local/slow-web").status_code == 200  # revision 1 still answers

    again = await fetch_json(jp_fetch, "jobs", second["id"], "cancel", method="POST", body={})
    assert again == {"id": second["id"], "cancelling": False, "state": "cancelled"}
    jobs = await fetch_json(jp_fetch, "jobs")
    assert [j["state"] for j in jobs] == ["ready", "cancelled"] and len(jobs) <= KEPT


async def test_a_cancelled_first_deploy_stops_the_app(jp_fetch, gateway):
    source = f"%%fal_app first-slow --cmd '{SLOW_CMD}'\nx = 1\n"
    nb = {"path": "first.ipynb", "cells": [{"cell_type": "code", "source": source}]}
    job = await fetch_json(jp_fetch, "apps", "first-slow", "deploy", method="POST", body={"notebook": nb})
    await wait_for_async(lambda: gateway.info("first-slow").get("deploying") is not None, what="the rollout to start")
    await fetch_json(jp_fetch, "jobs", job["id"], "cancel", method="POST", body={})
    end = (await follow_job(jp_fetch, job["id"]))[-1]
    assert end["state"] == "cancelled"
    assert gateway.info("first-slow")["status"] == "stopped"
    detail = await fetch_json(jp_fetch, "jobs", job["id"])
    assert detail["state"] == "cancelled" and detail["log"][-1] == end


async def test_a_failed_deploy_ends_with_its_error(jp_fetch):
    source = "%%fal_app broken-web --auth public --cmd 'exit 3 # $PORT'\nx = 1\n"
    nb = {"path": "broken.ipynb", "cells": [{"cell_type": "code", "source": source}]}
    job = await fetch_json(jp_fetch, "apps", "broken-web", "deploy", method="POST", body={"notebook": nb})
    end = (await follow_job(jp_fetch, job["id"]))[-1]
    assert end["state"] == "failed" and "Deploying broken-web failed" in end["error"]
    apps = {a["name"]: a for a in await fetch_json(jp_fetch, "apps")}
    assert apps["broken-web"]["status"] == "failed" and apps["broken-web"]["error"]


async def test_the_live_view_pushes_snapshots_and_rests_without_followers(jp_fetch, jp_serverapp):
    watch = jp_serverapp.web_app.settings["fal_notebook"].watch
    assert not watch.running
    events = await stream_for(jp_fetch, "events", seconds=2)
    snapshot = events[0][1]
    assert events[0][0] == "snapshot" and snapshot["gateway"]["running"] is True
    assert {"apps", "gateway", "jobs"} <= set(snapshot)
    await wait_for_async(lambda: not watch.running, what="the watch to stop when its follower left")


async def test_endpoints_say_whether_the_app_has_a_schema_and_what_its_playground_offers(jp_fetch, gateway):
    gateway.deploy(SERVER_CELL, "typed-web", auth="public")
    typed = await fetch_json(jp_fetch, "apps", "typed-web", "endpoints")
    assert typed["openapi"] is True and typed["endpoint_id"] == "local/typed-web"
    assert [(e["path"], e["method"], e["protocol"]) for e in typed["endpoints"]] == [
        ("/", "POST", "http"),
        ("*", "", "request"),  # any request, always last
    ]
    gateway.deploy("x = 1\n", "plain-web", cmd="python -m http.server $PORT", auth="public")
    plain = await fetch_json(jp_fetch, "apps", "plain-web", "endpoints")
    assert plain["openapi"] is False and "no OpenAPI schema" in plain["note"]
    assert [e["path"] for e in plain["endpoints"]] == ["*"]
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("fal-notebook", "apps", "never-deployed", "endpoints")
    assert error.value.code == 404
