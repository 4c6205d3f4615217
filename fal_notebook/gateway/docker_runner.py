"""A docker runner's process: ``python -I -S docker_runner.py NAME DOCKER run --detach --name NAME ... IMAGE``.

An attached ``docker run`` answers ~0.2 s later than a detached one, so this program starts the
container detached (without ``--rm``, so its exit code can be read), passes on its output with
``docker logs --follow`` (stdout and stderr apart), waits for it, removes it, and exits with its exit
code. SIGTERM or SIGINT stops the container gracefully (``docker stop``). The docker commands run in
sessions of their own, so a signal to the runner's process group reaches this program only.
Standard library only, no package imports: its start is part of every docker runner's.
"""

import signal
import subprocess
import sys
from subprocess import DEVNULL, PIPE


def main(name: str, run: list[str]) -> int:
    docker = run[0]
    stops: list[subprocess.Popen[bytes]] = []
    started = False
    stopping = False

    def docker_stop() -> None:
        stops.append(subprocess.Popen([docker, "stop", name], stdin=DEVNULL, stdout=DEVNULL, start_new_session=True))

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        if started and not stopping:
            docker_stop()
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    created = docker_command(run)  # docker's own error (no such image, port taken) goes to stderr
    if created.returncode != 0:
        docker_command([docker, "rm", "--force", name], stderr=DEVNULL)  # created but not started
        return created.returncode
    started = True
    if stopping:
        docker_stop()
    docker_command([docker, "logs", "--follow", name], stdout=None)  # ends when the container does
    waited = docker_command([docker, "wait", name], stdout=PIPE)
    docker_command([docker, "rm", "--force", name], stderr=DEVNULL)
    for stop in stops:
        stop.wait()
    code = waited.stdout.strip()
    return int(code) if code.isdigit() else waited.returncode or 1


def docker_command(
    argv: list[str], stdout: int | None = DEVNULL, stderr: int | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdin=DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
