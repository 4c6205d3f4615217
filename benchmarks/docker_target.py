"""``--target docker``, each figure beside what one would do with Docker by hand (same image, same
machine, alternating runs):

- sync calls through the gateway to a container vs straight to the container's published port;
- deploy → first response with the image built vs ``docker run`` of the same image by hand;
- a rebuild after a code-only edit of the cell vs the first build (``docker build --no-cache``
  of the same generated folder): what the Dockerfile's layer order saves.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

from fal_notebook.generate.project import AppProject

from .gateway import BLOCK, sync_call, timed
from .harness import (
    WORDS,
    Row,
    Sizes,
    deploy,
    deploy_project,
    free_port,
    interleaved,
    median,
    p50_ms,
    private_gateway,
    wait_answer,
    wait_runners,
)


def rows(sizes: Sizes) -> list[Row]:
    from fal_notebook import capture
    from fal_notebook.gateway.containers import engine

    client = engine()
    images: set[str] = set()
    try:
        with private_gateway() as home:
            name = f"bench-{uuid.uuid4().hex[:6]}"
            deployment = deploy(home, WORDS, name, env="docker")
            images.add(deployment.detail.image)
            runner = f"http://127.0.0.1:{wait_runners(name, 1)[0]['port']}/"
            found = [overhead(deployment.url, runner, sizes)]
            deployment.stop()
            found.append(first_response(home, name, deployment.detail.image, sizes))
            if not sizes.rebuild_fal_app:  # a small image: a --cmd server on Python's own web server
                static = "# Static files, served by Python's own web server.\n"
                name = f"bench-{uuid.uuid4().hex[:6]}"
                capture(static, name, out_dir=home / "apps", cmd="python -m http.server $PORT")
            found.append(rebuild(client, home / "apps" / name, images, sizes))
            return found
    finally:
        for image in images:
            try:
                client.images.remove(image, force=True)
            except Exception:  # already gone
                pass
        client.close()


def overhead(url: str, runner: str, sizes: Sizes) -> Row:
    for side in (url, runner):
        timed(sync_call, side, 20)()
    blocks = max(1, sizes.calls // BLOCK)
    share = sizes.calls // blocks
    got = interleaved({"via": timed(sync_call, url, share), "direct": timed(sync_call, runner, share)}, blocks)
    rps_via, rps_direct = len(got["via"]) / sum(got["via"]), len(got["direct"]) / sum(got["direct"])
    added = p50_ms(got["via"]) - p50_ms(got["direct"])
    return Row(
        f"docker: sync calls through the gateway vs straight to the container ({len(got['via'])} each)",
        f"{rps_via:.0f} req/s, p50 {p50_ms(got['via']):.2f} ms",
        f"{rps_direct:.0f} req/s, p50 {p50_ms(got['direct']):.2f} ms",
        rps_via / rps_direct,
        "≥ 0.8×",
        rps_via / rps_direct >= 0.8,
        f"p50 added {added:+.2f} ms",
    )


def first_response(home: Path, name: str, image: str, sizes: Sizes) -> Row:
    project = AppProject.load(home / "apps" / name)  # captured: %fal_deploy only deploys

    def ours() -> list[float]:
        started = time.perf_counter()
        deployment = deploy_project(project, "docker")
        wait_answer(deployment.url)
        took = time.perf_counter() - started
        deployment.stop()
        return [took]

    def by_hand() -> list[float]:
        port, container = free_port(), f"fal-notebook-bench-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        run = ["docker", "run", "--rm", "--init", "--detach", "--name", container, "-p", f"127.0.0.1:{port}:8080"]
        subprocess.run([*run, image], check=True, capture_output=True)
        try:
            wait_answer(f"http://127.0.0.1:{port}/")
            return [time.perf_counter() - started]
        finally:
            subprocess.run(["docker", "rm", "--force", container], capture_output=True)

    got = interleaved({"ours": ours, "hand": by_hand}, sizes.deploy_rounds)
    a, b = median(got["ours"]), median(got["hand"])
    return Row(
        "docker: deploy → first response, image built, vs `docker run` by hand",
        f"{a:.2f} s",
        f"{b:.2f} s",
        a / b,
        "≤ 1.2×",
        a / b <= 1.2,
    )


def rebuild(client, folder: Path, images: set[str], sizes: Sizes) -> Row:
    """``docker build`` of the generated folder from scratch (``--no-cache``) vs after an edit of
    the code only (with the cache of the build before)."""
    app = folder / ("app.py" if (folder / "app.py").exists() else "server.py")
    original = app.read_text()

    def build(*, nocache: bool) -> float:
        tag = f"fal-notebook-bench/{folder.name}:{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        for chunk in client.api.build(path=str(folder), tag=tag, rm=True, forcerm=True, nocache=nocache, decode=True):
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
        images.add(tag)
        return time.perf_counter() - started

    def first() -> list[float]:
        app.write_text(original)
        return [build(nocache=True)]

    def code_only() -> list[float]:
        app.write_text(original + f"\n# edited {uuid.uuid4().hex}\n")
        return [build(nocache=False)]

    try:
        got = {"first": [], "edit": []}
        for _ in range(sizes.builds):  # the edit's build needs the first's cache: always in this order
            got["first"] += first()
            got["edit"] += code_only()
    finally:
        app.write_text(original)
    a, b = median(got["edit"]), median(got["first"])
    kind = "fal.App" if sizes.rebuild_fal_app else "--cmd server"
    return Row(
        f"docker: rebuild after a code-only edit vs the first build ({kind} image)",
        f"{a:.2f} s",
        f"{b:.2f} s",
        a / b,
        "≤ 0.1×",
        a / b <= 0.1,
    )
