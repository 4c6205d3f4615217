"""A docker runner's process: ``python -I -S docker_runner.py NAME START_FD SECRETS_FILE SECRETS DOCKER run
--detach --name NAME ... IMAGE``.

It writes the variables named in SECRETS (comma-separated, from its environment) to SECRETS_FILE (``-``:
none), which ``docker run`` mounts into the container, and removes it once the container started: the
values never enter the container's configuration (``docker inspect``). It starts the container detached
(without ``--rm``, so that its exit code can be read), closes START_FD once ``docker run`` has returned
(the gateway probes the published port only then: a connection to it while the container starts
delays the start by ~0.2 s), passes on the container's
output with ``docker logs --follow`` (stdout and stderr apart), waits for it, removes it, and exits
with its exit code. SIGTERM or SIGINT stops the container gracefully (``docker stop``). The docker
commands run in sessions of their own, so that a signal to the runner's process group reaches this
program only, and (on Linux) die with it. Standard library only: its start is part of every runner's.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from subprocess import DEVNULL, PIPE


def main(name: str, start_fd: int, secrets_file: str, secrets: str, run: list[str]) -> int:
    if secrets_file != "-":
        write_secrets(secrets_file, [n for n in secrets.split(",") if n])
    try:
        return follow(name, start_fd, secrets_file, run)
    finally:
        if secrets_file != "-":
            remove(secrets_file)


def write_secrets(path: str, names: list[str]) -> None:
    """``export NAME='value'`` lines for a shell to read, the file readable by the user alone."""
    quoted = ("'" + os.environ.get(n, "").replace("'", "'\\''") + "'" for n in names)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(f"export {n}={value}\n" for n, value in zip(names, quoted, strict=True))


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def follow(name: str, start_fd: int, secrets_file: str, run: list[str]) -> int:
    docker = run[0]
    stops: list[subprocess.Popen[bytes]] = []
    started = stopping = False

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
    if secrets_file != "-":
        remove(secrets_file)  # the started container holds it; nothing else needs it
    os.close(start_fd)
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
    return subprocess.run(
        argv, stdin=DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True, preexec_fn=_DIE_WITH_PARENT
    )


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to kill the command when this program dies (PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGKILL)


_DIE_WITH_PARENT = _die_with_parent()

if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]))
