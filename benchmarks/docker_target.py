"""Side-by-side ratios for ``--target docker`` (same image, same machine, alternating runs).

(a) Sync calls through the gateway to a container vs calling the container's published port
    directly: requests/s ratio and the p50 latency the gateway adds.
(b) Time from deploy to first response with the image built (no rebuild) vs ``docker run`` of the
    same image by hand.
Also prints the first deploy's time (image build included), for reference.

Run: ``PYTHONPATH=. python benchmarks/docker_target.py [--calls 400] [--rounds 3]`` on a machine whose
Docker engine has the base image. Uses a temporary FAL_NOTEBOOK_HOME and a free port; removes the
image and its containers at the end; prints the figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from gateway_overhead import APP, free_port, overhead, wait_answer


def deploy_to_first_response(backend, project, image: str, rounds: int) -> None:
    ours, by_hand = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        deployment = backend.deploy(project, progress=lambda line: None)
        wait_answer(deployment.url)
        ours.append(time.perf_counter() - started)
        deployment.stop()

        port, name = free_port(), f"fal-notebook-bench-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        subprocess.run(
            ["docker", "run", "--rm", "--init", "--detach", "--name", name, "-p", f"127.0.0.1:{port}:8080"] + [image],
            check=True,
            capture_output=True,
        )
        try:
            wait_answer(f"http://127.0.0.1:{port}/")
            by_hand.append(time.perf_counter() - started)
        finally:
            subprocess.run(["docker", "rm", "--force", name], capture_output=True)
    a, b = statistics.median(ours), statistics.median(by_hand)
    print(f"(b) deploy to first response, image built, median of {rounds}")
    print(f"    docker run by hand: {b:5.2f} s   %fal_deploy --target docker: {a:5.2f} s   ratio {a / b:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="fal-notebook-bench-"))
    os.environ["FAL_NOTEBOOK_HOME"] = str(home)
    os.environ["FAL_NOTEBOOK_GATEWAY_PORT"] = str(free_port())

    import fal_notebook
    from fal_notebook.backends.docker import DockerBackend
    from fal_notebook.gateway import stop_gateway
    from fal_notebook.gateway.containers import engine
    from fal_notebook.gateway.control import admin

    name = f"bench-docker-{uuid.uuid4().hex[:6]}"
    project = fal_notebook.capture(APP, name, out_dir=home / "apps")
    backend = DockerBackend()
    image = None
    try:
        started = time.perf_counter()
        deployment = backend.deploy(project, progress=lambda line: None)
        print(f"first deploy (docker build included): {time.perf_counter() - started:.1f} s")
        image = deployment.detail.image
        with admin() as client:
            port = client.get(f"/_fal_notebook/apps/{name}").json()["runners"][0]["port"]
        overhead(deployment.url, f"http://127.0.0.1:{port}/", args.calls)
        deployment.stop()
        deploy_to_first_response(backend, project, image, args.rounds)
    finally:
        stop_gateway()
        if image:
            client = engine()
            client.images.remove(image, force=True)
            client.close()


if __name__ == "__main__":
    main()
