"""Runner processes: one OS process per runner, on ports of its own, with its output captured.

App mode runs the real fal SDK (``fal run --local``); server mode runs the server's own command;
a docker deployment runs its container detached and follows it (containers.py). Runners live in their own
process group and (on Linux) die with the gateway, so a killed gateway leaves no runner behind
holding a port; what a runner leaves outside its process (a container) its launch's ``cleanup``
command removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import re
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ..statuses import GOING, RunnerState
from . import listeners
from .environment import inherited
from .gpus import Gpu, visible
from .settings import DEFAULT_STARTUP_TIMEOUT
from .supervisor import Supervisor, log

RUNNER_MARKER = "FAL_NOTEBOOK_RUNNER"
#: A ready runner's output does not wake the gateway line by line (an access line per request, and
#: each wake-up of the gateway costs more than the line on a busy machine): it is read this often
#: while the runner writes, less often (up to OUTPUT_READ_MAX) while it is silent, and whenever a
#: request's logs must be complete (``read_output``).
OUTPUT_READ = 0.1
OUTPUT_READ_MAX = 1.0
#: The pipes' buffer (Linux), so that a runner writing between two reads does not block.
PIPE_SIZE = 1 << 20
#: At most this many reads of a pipe at a time (a runner that writes without pause).
DRAIN_READS = 16
#: Longest output line passed on whole (a longer one comes in pieces).
MAX_LINE = 1 << 20
#: A starting runner that writes nothing is probed again after this many seconds.
PROBE_INTERVAL = 0.05
TAIL_LINES = 200
SHOWN_LINES = 40
EXCEPTION_LINE = re.compile(r"^(?!SystemExit\b)[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b(:.*)?$")
_PORT_IN_USE = re.compile(r"address already in use|errno 98|errno 48|port is already allocated", re.IGNORECASE)
_COLOUR = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PLACEHOLDER = re.compile(r"\{(port|metrics_port|instance|start_fd|gpus)\}")
_SHELL_SYNTAX = re.compile(r"[;&|()<>`\n]|^\s*\w+=")
_allocated: set[int] = set()

#: On a runner's PYTHONPATH: its Python processes listen on loopback only (loopback/sitecustomize.py).
LOOPBACK_PATH = str(Path(__file__).parent / "loopback")
#: Where a server should listen, for servers that read it (the generated server.py does).
LOOPBACK_HOST = "127.0.0.1"


def runner_environment(
    secrets: dict[str, str], *, loopback: bool = True, python_path: str = "", **extra: str
) -> dict[str, str]:
    """A runner's environment: what it :func:`inherited` from the gateway's, ``secrets``, ``extra``,
    and (for processes on this machine, not containers) loopback-only servers, ahead of
    ``python_path`` (the kernel's PYTHONPATH, for runners in its environment)."""
    env = {k: v for k, v in os.environ.items() if inherited(k)}
    env.update(secrets)
    env.update(extra)
    if loopback:
        env.update(PYTHONPATH=os.pathsep.join(filter(None, (LOOPBACK_PATH, python_path))), HOST=LOOPBACK_HOST)
    return env


class RunnerStartError(Exception):
    """A runner did not become ready; the message ends with its last output lines."""

    def __init__(self, message: str, *, port_conflict: bool = False):
        super().__init__(message)
        self.port_conflict = port_conflict


@dataclass
class Launch:
    """How to start the runners of one app revision. ``argv`` may contain ``{port}``,
    ``{metrics_port}`` and ``{instance}`` (a name unique to the runner on this machine); with
    ``shell`` it is one shell command that reads ``$PORT``. ``cleanup`` (same placeholders) runs
    once the runner's process has ended; ``{gpus}``: the UUIDs of the runner's GPUs, comma-separated.
    ``http_probe``: ready only once the port answers HTTP
    (a port forwarder accepts connections before the app listens). ``start_notice``: ``argv``
    contains ``{start_fd}``, a file descriptor the runner closes once what listens on its port has
    started; it is not probed before (a connection to a starting container's published port
    delays its start by ~0.2 s). ``wrapper``: a command the runner's own command runs under (the
    sandbox, sandbox.py), its arguments before the runner's."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    shell: bool = False
    fixed_port: int | None = None
    health_path: str | None = None
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    needs_metrics_port: bool = False
    cleanup: list[str] | None = None
    http_probe: bool = False
    image: str | None = None  # the docker image the runners run, if any
    start_notice: bool = False
    gpus: int = 0  # GPUs each runner takes from the gateway's pool (gpus.py), before it starts
    visible_devices: bool = False  # its CUDA_VISIBLE_DEVICES names them (empty: none)
    wrapper: list[str] = field(default_factory=list)


def free_port() -> int:
    """A port nothing listens on (on any interface: fal's runner binds 0.0.0.0), not handed out yet."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("0.0.0.0", 0))
            port = s.getsockname()[1]
        if port not in _allocated:
            _allocated.add(port)
            return port
    raise RuntimeError("no free port found")


def exposed(ports: set[int]) -> list[str]:
    """Listening TCP sockets on ``ports`` bound beyond loopback, as ``address:port``."""
    found = listeners.listeners()
    return [f"{where.address}:{where.port}" for where in found if where.port in ports and not where.on_loopback]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no conflict
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def port_taken(port: int, where: str) -> str:
    """Why a runner cannot have ``port``: who holds it, and what to change."""
    holder = listeners.holder(port)
    return (
        f"Port {port}, {where}, is taken by {holder or 'another process'}: requests sent there would reach it, "
        "not the app. Stop that process, choose another --port, or let the command read $PORT (each runner then "
        "gets a free port)."
    )


def shell_command(cmd: str) -> str:
    """A simple command replaces the shell (``exec``), so it is the runner process itself and dies
    with the gateway; a compound one keeps its shell (leftovers are cleaned at the next start)."""
    return cmd if _SHELL_SYNTAX.search(cmd) else "exec " + cmd


def _release_port(port: int | None) -> None:
    if port is not None:
        _allocated.discard(port)


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to kill the runner when the gateway dies (PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(1, signal.SIGKILL)

    return hook


_PRE_EXEC = _die_with_parent_hook()

OnOutput = Callable[["Runner", str, str], None]


@dataclass(eq=False)
class Runner:
    id: str
    revision: int
    launch: Launch
    on_output: OnOutput
    state: RunnerState = RunnerState.STARTING
    port: int | None = None
    metrics_port: int | None = None
    process: asyncio.subprocess.Process | None = None
    #: Its own environment, beside its launch's (what its resources give it: app/resources.py).
    env: dict[str, str] = field(default_factory=dict)
    in_flight: dict[str, bool] = field(default_factory=dict)  # request id -> keep its logs
    hints: frozenset[str] = frozenset()  # its X-Fal-Runner-Hints, as its last answer gave them
    gpus: tuple[Gpu, ...] = ()  # the GPUs it holds (taken before it starts)
    idle_since: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)
    served: int = 0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    returncode: int | None = None
    instance: str = ""
    cleaned: bool = True
    health_failures: int = 0  # health checks failed in a row
    next_probe: float = 0.0  # when its next health check is due (the runtime's clock)
    probing: bool = False
    _pipes: list[OutputPipe] = field(default_factory=list)  # its stdout and stderr, as they are read
    _spoke: asyncio.Event = field(default_factory=asyncio.Event)  # it wrote a line (since cleared)
    _reading: asyncio.TimerHandle | None = None  # the next read of a ready runner's output
    _started: asyncio.Event = field(default_factory=asyncio.Event)  # it may be probed (its start notice)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return not self.exited.is_set() and self.state not in GOING

    def tail_text(self) -> str:
        """The runner's last output lines, led by the exception it raised, if any."""
        lines = list(self.tail)
        raised = [line for line in lines if EXCEPTION_LINE.match(line)]
        shown = "\n".join(lines[-SHOWN_LINES:]) or "(no output)"
        return f"{raised[0]}\n...\n{shown}" if raised and raised[0] not in lines[-SHOWN_LINES:] else shown

    async def start(self, http: httpx.AsyncClient, *, state_id: str, tasks: Supervisor) -> None:
        """Spawn the process and wait until it answers; RunnerStartError otherwise. Its output
        readers run under ``tasks``."""
        for attempt in range(3):
            if self.state != RunnerState.STARTING:
                raise RunnerStartError(f"Runner {self.id} was stopped before it was ready.")
            self._take_ports()
            if self.launch.fixed_port is not None and self._local() and not port_is_free(self.launch.fixed_port):
                raise RunnerStartError(port_taken(self.launch.fixed_port, f"where runner {self.id} must listen"))
            await self._spawn(state_id, tasks)
            try:
                await self._wait_ready(http)
            except RunnerStartError as exc:
                if exc.port_conflict and self.launch.fixed_port is None and attempt < 2:
                    await self._clean_up()
                    self.tail.clear()
                    self.exited = asyncio.Event()
                    continue
                raise
            if self.state != RunnerState.STARTING:
                raise RunnerStartError(f"Runner {self.id} was stopped before it was ready.")
            public = self.beyond_loopback()
            if public:
                await self.stop(grace=2.0)
                raise RunnerStartError(self.exposed_message(public))
            self.state = RunnerState.READY
            self.idle_since = time.monotonic()
            for pipe in self._pipes:
                pipe.hush()
            self._read_later(OUTPUT_READ)
            return

    @property
    def ports(self) -> set[int]:
        return {port for port in (self.port, self.metrics_port) if port is not None}

    def beyond_loopback(self, public: list[str] | None = None) -> list[str]:
        """Where the runner listens beyond loopback (``address:port``, its ports only): checked when it
        starts and, while it runs, by its app's health checks (a server may rebind later), which
        read the tables once for all their runners (``public``: what ``exposed`` found on theirs)."""
        if public is None:
            return exposed(self.ports)
        return [where for where in public if int(where.rpartition(":")[2]) in self.ports]

    def exposed_message(self, public: list[str]) -> str:
        return (
            f"Runner {self.id} listens on {', '.join(public)}, where other machines reach it without the "
            f"gateway's key. Make the server listen on {LOOPBACK_HOST} only (runners have HOST={LOOPBACK_HOST}; "
            f'e.g. --cmd "uvicorn server:app --host $HOST --port $PORT").'
        )

    def _take_ports(self) -> None:
        _release_port(self.port)
        _release_port(self.metrics_port)
        self.port = self.launch.fixed_port or free_port()
        self.metrics_port = free_port() if self.launch.needs_metrics_port else None

    def _expand(self, template: list[str], start_fd: int | None = None) -> list[str]:
        values = {"port": str(self.port), "metrics_port": str(self.metrics_port), "instance": self.instance}
        values["start_fd"], values["gpus"] = str(start_fd), visible(self.gpus)
        return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in template]

    def environment(self, state_id: str) -> dict[str, str]:
        """The runner process's environment: its launch's (runner_environment), its own (``env``),
        its port, and the marker that finds it after a gateway crash (kill_orphans)."""
        return {
            **self.launch.env,
            **self.env,
            "PORT": str(self.port),
            RUNNER_MARKER: f"{state_id}/{self.id}",
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
        }

    async def _spawn(self, state_id: str, tasks: Supervisor) -> None:
        self.instance = f"fal-notebook-{self.id}-{state_id[:8]}"
        self.cleaned = not self.launch.cleanup
        env = self.environment(state_id)
        loop = asyncio.get_running_loop()
        self._started = asyncio.Event()
        notice, notice_end = os.pipe() if self.launch.start_notice else (None, None)
        if notice is None:
            self._started.set()
        else:
            loop.add_reader(notice, _start_noticed, notice, loop, self._started)
        argv = self.launch.argv if self.launch.shell else self._expand(self.launch.argv, notice_end)
        if self.launch.shell:
            argv = ["/bin/sh", "-c", shell_command(argv[0])]
        argv = [*self.launch.wrapper, *argv]
        # pipes of the runner's own (not asyncio's): read when the gateway chooses (OutputPipe), not line by line
        (out, out_end), (err, err_end) = os.pipe(), os.pipe()
        self._pipes = [OutputPipe(out, "stdout", self._line, loop), OutputPipe(err, "stderr", self._line, loop)]
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.launch.cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_end,
                stderr=err_end,
                start_new_session=True,
                preexec_fn=_PRE_EXEC,
                pass_fds=() if notice_end is None else (notice_end,),
            )
        except BaseException:
            for pipe in self._pipes:
                pipe.close()
            if notice is not None:
                _start_noticed(notice, loop, self._started)
            raise
        finally:
            os.close(out_end)
            os.close(err_end)
            if notice_end is not None:
                os.close(notice_end)
        self.started = time.monotonic()
        tasks.spawn(self._watch(self.process, self._pipes), name=f"{self.id} exit")

    def read_output(self) -> bool:
        """Hand what the runner wrote until now to ``on_output``; whether it wrote anything."""
        return any([pipe.drain() for pipe in self._pipes])

    def _read_later(self, delay: float) -> None:
        """Read the output of a ready runner after ``delay`` seconds, and so on until it ends: soon
        again when it wrote something, later and later while it is silent."""

        def read() -> None:
            self._reading = None
            if not self.exited.is_set():
                self._read_later(OUTPUT_READ if self.read_output() else min(delay * 2, OUTPUT_READ_MAX))

        self._reading = asyncio.get_running_loop().call_later(delay, read)

    def _line(self, name: str, line: str) -> None:
        line = _COLOUR.sub("", line)  # servers that colour their logs whatever NO_COLOR says
        self.tail.append(line)
        self._spoke.set()
        try:  # a failing consumer must not stop the reading: a full pipe would block the runner
            self.on_output(self, name, line)
        except Exception:
            log.exception("Output of runner %s could not be recorded", self.id)

    async def _watch(self, process: asyncio.subprocess.Process, pipes: list[OutputPipe]) -> None:
        code = await process.wait()
        if self._reading is not None:
            self._reading.cancel()
            self._reading = None
        for pipe in pipes:  # read to their end
            pipe.listen()
        await asyncio.wait([asyncio.ensure_future(pipe.ended.wait()) for pipe in pipes], timeout=1.0)
        for pipe in pipes:  # a grandchild may hold the pipe open: stop reading it with the runner
            pipe.close()
        if process is self.process:
            self.returncode = code
            self.exited.set()

    async def _wait_ready(self, http: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + self.launch.startup_timeout
        while True:
            if self.exited.is_set():
                text = self.tail_text()
                raise RunnerStartError(
                    f"Runner {self.id} exited with code {self.returncode} before it was ready. "
                    f"Its last output:\n{text}",
                    port_conflict=bool(_PORT_IN_USE.search(text)),
                )
            if time.monotonic() > deadline:
                opened = await self._opened()
                await self.stop(grace=2.0)
                raise RunnerStartError(
                    f"Runner {self.id} was not ready within startup_timeout={self.launch.startup_timeout:g} s "
                    f"(--startup-timeout): the gateway waited for it on port {self.port}, and {opened}. "
                    f"Its last output:\n{self.tail_text()}"
                )
            self._spoke.clear()
            if self._started.is_set() and await self._answers(http):
                await self._check_own_port()
                return
            # probe again when the runner writes a line (a server says when it listens), or after PROBE_INTERVAL
            events = [self.exited, self._spoke] + ([] if self._started.is_set() else [self._started])
            waits = [asyncio.ensure_future(event.wait()) for event in events]
            try:
                await asyncio.wait(waits, timeout=PROBE_INTERVAL, return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when the start itself is cancelled
                for wait in waits:
                    wait.cancel()

    def _local(self) -> bool:
        """A process of its own on this machine, whose sockets /proc shows (not a container's, whose
        port a forwarder holds: those launches probe over HTTP, or after a start notice)."""
        forwarded = self.launch.image is not None or self.launch.http_probe or self.launch.start_notice
        return not forwarded and listeners.observable()

    async def _opened(self) -> str:
        """What the runner's processes listen on, in words (for a runner that is not ready)."""
        if not self._local() or self.process is None:
            return "nothing answered there"
        ports = sorted(await asyncio.to_thread(listeners.ports_of_tree, self.process.pid))
        if not ports:
            return "its processes opened no port"
        hint = (
            "a server listens where its own code says (e.g. `app.run(port=5000)`): let it use $PORT, or set --port "
            "to its port"
            if self.launch.fixed_port is None
            else "set --port to the port it listens on"
        )
        return f"its processes listen on {', '.join(map(str, ports))} instead ({hint})"

    async def _check_own_port(self) -> None:
        """Ready only on a port its own processes opened: another process on its port (a fixed port
        taken while it started, as Gradio then moves to the next one) must not get its requests."""
        if not self._local() or self.process is None or self.port is None:
            return
        ports = await asyncio.to_thread(listeners.ports_of_tree, self.process.pid)
        if self.port in ports:
            return
        await self.stop(grace=2.0)
        own = f"it listens on {', '.join(map(str, sorted(ports)))}" if ports else "it opened no port"
        raise RunnerStartError(port_taken(self.port, f"where runner {self.id} was to listen ({own})"))

    async def _answers(self, http: httpx.AsyncClient) -> bool:
        if self.launch.health_path or self.launch.http_probe:
            try:
                response = await http.get(self.url + (self.launch.health_path or "/"), timeout=2.0)
            except httpx.HTTPError:
                return False
            return response.status_code < 500 or not self.launch.health_path  # the probe: any answer
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 1.0)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the runner's process group, SIGKILL after ``grace`` seconds."""
        if self.state != RunnerState.DEAD:
            self.state = RunnerState.STOPPING
        if self.process is not None and not self.exited.is_set():
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.exited.wait(), grace)
            except TimeoutError:
                self._signal(signal.SIGKILL)
                await self.exited.wait()
        await self._clean_up()
        self.state = RunnerState.DEAD
        _release_port(self.port)
        _release_port(self.metrics_port)

    async def _clean_up(self) -> None:
        """Run the launch's cleanup command once per spawn (its output and exit code are ignored)."""
        if self.cleaned:
            return
        self.cleaned = True
        try:
            process = await asyncio.create_subprocess_exec(
                *self._expand(self.launch.cleanup or []),
                cwd=self.launch.cwd,
                env=self.launch.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await process.wait()
        except OSError:
            pass

    def _signal(self, sig: int) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _start_noticed(notice: int, loop: asyncio.AbstractEventLoop, started: asyncio.Event) -> None:
    """A runner closed its start notice (or ended): it may be probed."""
    loop.remove_reader(notice)
    os.close(notice)
    started.set()


class OutputPipe:
    """The read end of a runner's stdout or stderr, read as data comes while it is listened to
    (``listen``; ``hush``: only when ``drain``-ed); each line (at most MAX_LINE bytes) goes to
    ``on_line``. It is closed at its end, once."""

    def __init__(self, fd: int, name: str, on_line: Callable[[str, str], None], loop: asyncio.AbstractEventLoop):
        self.fd, self.name, self.on_line, self.loop = fd, name, on_line, loop
        self.ended = asyncio.Event()
        self._partial = b""
        self._listening = False
        os.set_blocking(fd, False)
        with contextlib.suppress(OSError, AttributeError):  # Linux only; the default elsewhere
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self.listen()

    def listen(self) -> None:
        if not self._listening and not self.ended.is_set():
            self.loop.add_reader(self.fd, self._readable)
            self._listening = True

    def hush(self) -> None:
        if self._listening:
            self.loop.remove_reader(self.fd)
            self._listening = False

    def drain(self) -> bool:
        """Read what the pipe holds now; whether it held anything."""
        reads = 0
        while reads < DRAIN_READS and not self.ended.is_set() and self._readable():
            reads += 1
        return reads > 0

    def close(self) -> None:
        if not self.ended.is_set():
            self.hush()
            self.ended.set()
            os.close(self.fd)
            if self._partial:
                self.on_line(self.name, self._partial.decode(errors="replace").rstrip("\r"))
                self._partial = b""

    def _readable(self) -> bool:
        """Read once; whether anything came."""
        try:
            data = os.read(self.fd, 1 << 16)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            self.close()
            return False
        *lines, self._partial = (self._partial + data).split(b"\n")
        if len(self._partial) > MAX_LINE:  # a line without end: pass on what there is
            lines.append(self._partial)
            self._partial = b""
        for line in lines:
            self.on_line(self.name, line.decode(errors="replace").rstrip("\r"))
        return True


def kill_orphans(state_id: str) -> int:
    """Kill runners a previous gateway of this state directory left behind (Linux, via /proc)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return 0
    marker = f"{RUNNER_MARKER}={state_id}/".encode()
    killed = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed
