"""The gateway's state in one object: apps, the durable queue, change notifications, housekeeping."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from .. import wire
from ..config import auth_mode
from ..generate.project import AppProject
from ..statuses import AppStatus
from ..wire import CancelAnswer, Completed, ErrorType, InProgress, Queued, RequestStatus, RetryCondition, Status
from . import retries
from .admin_api import AppInfo, DeploySpec
from .app import AppRuntime, Build, GpuResources, Resources, Unavailable
from .containers import remove_containers
from .envs import OnLine
from .gpus import NO_DRIVER, GpuPool
from .headers import runner_hint
from .limits import Limits, variable
from .paths import db_path
from .prepare import digest, prepare, snapshot
from .runners import Launch, OnOutput, Runner, kill_orphans
from .store import INLINE_BODY, AppRecord, Request, Store
from .supervisor import Clock, Supervisor
from .upstream import Upstream
from .webhooks import Delivery, Webhooks, signing_key

TICK = 0.25
PURGE_EVERY = 60.0
#: The gateway's own calls to runners, each kind on connections of its own and with a timeout, so that
#: none waits behind another: probes (readiness, health checks) never queue behind callers' traffic;
#: webhook deliveries have their own, bounded share (webhooks.py). Seconds, and connections at once.
PROBE_TIMEOUT, PROBE_CONNECTIONS = 10.0, 32
CALL_TIMEOUT, CALL_CONNECTIONS = 10.0, 32


class QueueFull(Exception):
    """The gateway's queue holds ``max_queue`` requests already."""


class Gateway:
    def __init__(self, *, key: str, state_id: str, max_queue: int = Limits.max_queue, gpus: GpuPool | None = None):
        self.key = key
        self.gpus = gpus or GpuPool([], NO_DRIVER)  # the GPUs runners take (gpus.py)
        self.state_id = state_id
        self.max_queue = max_queue
        self.store = Store(db_path())
        self.probes = httpx.AsyncClient(timeout=PROBE_TIMEOUT, limits=httpx.Limits(max_connections=PROBE_CONNECTIONS))
        self.http = httpx.AsyncClient(timeout=CALL_TIMEOUT, limits=httpx.Limits(max_connections=CALL_CONNECTIONS))
        self.upstream = Upstream()  # the calls themselves
        self.apps: dict[str, AppRuntime] = {}
        self._records = self.store.apps()
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self.tasks = Supervisor()
        self.clock = Clock()
        self.resources: Resources = GpuResources(self.gpus)  # what runners take from the machine (app/resources.py)
        self.webhooks = Webhooks(signing_key(), self.tasks, self.clock, self.store)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Restore the deployed apps and the queue after a (re)start."""
        kill_orphans(self.state_id)
        if any(record.spec is not None and record.spec.env == "docker" for record in self._records.values()):
            await asyncio.to_thread(remove_containers, self.state_id)
        for name, record in self._records.items():
            spec = record.spec
            stopped = record.status == AppStatus.STOPPED or spec is None
            runtime = AppRuntime(name, self, stopped=stopped, auth=record.auth, retry=record.retry)
            self.apps[name] = runtime
            if spec is None or stopped:
                continue
            secrets = record.secret_names
            if secrets:  # their values live in memory only: the next deploy brings them back
                runtime.log.event(
                    f"Secrets {', '.join(secrets)} are not kept across gateway restarts: the runners run without "
                    "them until the app is deployed again."
                )
            if record.revision:
                digest = (record.digest or "") + ("-without-secrets" if secrets else "")
                runtime.restore(spec, digest, record.revision)
            else:
                runtime.deploy(spec, "restored", copy=True)
        for request in self.store.in_progress():
            app = self.apps.get(request.app)
            if app is None or app.status == AppStatus.STOPPED:
                self._end(request.id, "The gateway restarted while the request ran, and its app is gone.")
                continue
            decision = self._interrupted(request)
            if not decision.retry:
                self._end(
                    request.id,
                    f"The gateway restarted while the request ran, and it cannot be retried: {decision.reason}.",
                )
                continue
            self.store.requeue(request.id)
            app.log.request_log(request.id, "The gateway restarted while this request ran; retrying it.")
        for name, runtime in self.apps.items():
            for request in self.store.queued(name):
                if runtime.status == AppStatus.STOPPED:
                    self._end(request.id, f"App {name} is stopped.")
                else:
                    runtime.queue.resume(request)
        for request in self.store.pending_webhooks():  # deliveries the gateway stopped before they ended
            self.webhooks.deliver(self._delivery(request))
        self.store.purge()
        self.tasks.spawn(self._keep_house(), name="housekeeping")

    async def close(self) -> None:
        """Stop every runner; the apps stay deployed and come back with the next start."""
        await asyncio.gather(*(runtime.shutdown() for runtime in self.apps.values()), return_exceptions=True)
        await self.tasks.close()  # webhook deliveries still under way too
        for runtime in self.apps.values():
            runtime.log.close()
        await self.http.aclose()
        await self.probes.aclose()
        await self.webhooks.aclose()
        await self.upstream.aclose()
        self.store.close()

    async def _keep_house(self) -> None:
        last_purge = self.clock.monotonic()
        while True:
            await self.clock.sleep(TICK)
            for runtime in list(self.apps.values()):
                runtime.tick()
            if self.clock.monotonic() - last_purge > PURGE_EVERY:
                self.store.purge()
                last_purge = self.clock.monotonic()

    def _interrupted(self, request: Request) -> retries.Decision:
        """fal's rules (retries.decide) for a request whose runner went with the previous gateway: a
        lost connection, under the app's own retry settings (recorded with the app). Its failures per
        condition were in that gateway's memory, so all its earlier attempts count as lost connections:
        a retry never goes beyond the app's budget."""
        stored = request.headers
        recorded = self._records.get(request.app)
        policy = (recorded.retry if recorded is not None else None) or retries.Policy()
        return retries.decide(
            retries.Attempt(503, {}, retries.DISCONNECTED),
            request_headers=stored,
            policy=policy,
            attempts=request.attempts,
            failures={RetryCondition.CONNECTION_ERROR: max(request.attempts - 1, 0)},
            owner=bool(stored.get(wire.CALLER_ID)),
            now=self.clock.time(),
            deadline=request.start_deadline,
        )

    def _end(self, request_id: str, detail: str) -> None:
        self.store.complete(
            request_id,
            503,
            wire.encode_error_bytes(detail, ErrorType.RUNNER_DISCONNECTED),
            "application/json",
            error=detail,
            error_type=ErrorType.RUNNER_DISCONNECTED,
        )
        self.completed(request_id)

    # -- what the app runtimes need (apps.Host) ----------------------------------------------
    async def build(self, spec: DeploySpec, target: Path, *, copy: bool, on_line: OnLine) -> Build:
        if copy:
            await asyncio.to_thread(snapshot, Path(spec.path), target)
        project = await asyncio.to_thread(AppProject.load, target)
        launch, notes = await prepare(project, spec, on_line, self.gpus)
        return Build(project.config, launch, notes)

    def new_runner(self, runner_id: str, revision: int, launch: Launch, on_output: OnOutput) -> Runner:
        return Runner(runner_id, revision, launch, on_output)

    # -- apps --------------------------------------------------------------------------------
    def deploy(self, name: str, spec: DeploySpec) -> AppInfo:
        """Register or replace app ``name``; returns its info with the revision being rolled out."""
        project = AppProject.load(spec.path)
        if project.name != name:
            raise ValueError(f"The project in {spec.path} is app {project.name!r}, not {name!r}.")
        runtime = self.apps.get(name)
        if runtime is None:
            runtime = self.apps[name] = AppRuntime(name, self)
        number = runtime.deploy(spec, digest(project, spec, self.key), auth=auth_mode(project.config.auth))
        runtime.save()
        return dataclasses.replace(runtime.info(), requested=number)

    async def remove(self, name: str) -> bool:
        runtime = self.apps.get(name)
        if runtime is None:
            return False
        await runtime.stop()
        return True

    def serving(self, name: str) -> AppRuntime | None:
        runtime = self.apps.get(name)
        return runtime if runtime is not None and runtime.status != AppStatus.STOPPED else None

    def save_app(self, name: str, record: AppRecord) -> None:
        self._records[name] = record
        self.store.save_app(name, record)

    def last_revision(self, name: str) -> int:
        record = self._records.get(name)
        return (record.revision if record is not None else None) or 0

    def completed(self, request_id: str) -> None:
        """A queued request ended: deliver its webhook, if it has one."""
        request = self.store.get(request_id)
        if request is not None and request.webhook:
            self.webhooks.deliver(self._delivery(request))

    def _delivery(self, request: Request) -> Delivery:
        """The webhook delivery of a completed request, from its stored state and answer."""
        runtime = self.apps.get(request.app)
        answer = self.store.result(request.id)
        assert answer is not None and request.webhook is not None, "a webhook is delivered for a completed request"
        return Delivery(
            url=request.webhook,
            request_id=request.id,
            gateway_request_id=wire.gateway_request_id(request.id, request.attempts),
            user_id=request.headers.get(wire.CALLER_ID) or "anonymous",
            status=answer.status,
            body=answer.body,
            log=runtime.log.event if runtime is not None else lambda _line: None,
            attempts=request.webhook_attempts,
        )

    # -- change notifications ----------------------------------------------------------------
    def notify(self, request_id: str) -> None:
        for event in self._watchers.get(request_id, ()):
            event.set()

    @contextlib.contextmanager
    def watch(self, request_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._watchers.setdefault(request_id, set()).add(event)
        try:
            yield event
        finally:
            self._watchers[request_id].discard(event)
            if not self._watchers[request_id]:
                del self._watchers[request_id]

    # -- the queue ---------------------------------------------------------------------------
    async def submit(
        self,
        runtime: AppRuntime,
        path: str,
        body: bytes,
        headers: dict[str, str],
        *,
        priority: int,
        timeout: float | None,
        webhook: str | None = None,
    ) -> str:
        """Store the request (durably, before anyone is told about it) and queue it."""
        if runtime.lifecycle.down:
            raise Unavailable(runtime.lifecycle.unavailable_reason())  # a crash-looping app queues: it may come back
        if sum(len(rt.queue.queued) for rt in self.apps.values()) >= self.max_queue:
            raise QueueFull(
                f"The gateway's queue holds {self.max_queue} requests already ({variable('max_queue')}); "
                "retry when some have run."
            )
        request_id = str(uuid.uuid4())
        deadline = self.clock.time() + timeout if timeout else None
        inline = len(body) <= INLINE_BODY  # small bodies go with the row; large ones to a file, off the loop
        if not inline:
            await asyncio.to_thread(self.store.save_body, request_id, body)
            if runtime.lifecycle.down:  # it changed while the body was written
                raise Unavailable(runtime.lifecycle.unavailable_reason())  # (an unused body file, as after a crash)
        self.store.add_request(
            request_id,
            runtime.name,
            path,
            headers,
            body=body if inline else None,
            priority=priority,
            start_deadline=deadline,
            webhook=webhook,
        )
        runtime.queue.enqueue(request_id, priority=priority, deadline=deadline, hint=runner_hint(headers))
        return request_id

    def status(self, request: Request, *, with_logs: bool) -> Status:
        """The request's status (its logs only when asked for: they cost a query)."""
        if request.status == RequestStatus.IN_QUEUE:
            return Queued(self.store.queue_position(request))
        logs = self.store.logs(request.id) if with_logs else []
        if request.status == RequestStatus.IN_PROGRESS:
            return InProgress(logs)
        metrics = {} if request.inference_time is None else {"inference_time": request.inference_time}
        return Completed(logs, metrics, request.error, request.error_type)

    async def cancel(self, runtime: AppRuntime | None, request: Request) -> CancelAnswer:
        """Queued: removed, ends with 499. Running: forwarded to the app's ``<path>/cancel``.
        Returns fal's answer (``CANCELLATION_REQUESTED``, ``ALREADY_COMPLETED``)."""
        if request.status == RequestStatus.COMPLETED:
            return CancelAnswer.ALREADY_COMPLETED
        if runtime is not None and request.status == RequestStatus.IN_QUEUE and runtime.queue.cancel_queued(request.id):
            detail = "Request cancelled while in the queue."
            self.store.complete(
                request.id,
                499,
                wire.encode_error_bytes(detail, ErrorType.CLIENT_CANCELLED),
                "application/json",
                error=detail,
                error_type=ErrorType.CLIENT_CANCELLED,
            )
            self.notify(request.id)
            self.completed(request.id)
            return CancelAnswer.CANCELLATION_REQUESTED
        self.store.request_cancel(request.id)
        if runtime is not None and (runner := runtime.pool.runner_of(request.id)) is not None:
            self.forward_cancel(runtime, runner.url, request.path, request.id)
        return CancelAnswer.CANCELLATION_REQUESTED

    def forward_cancel(self, runtime: AppRuntime, url: str, path: str, request_id: str) -> None:
        """Ask the app to cancel a running request (``<path>/cancel``), in the background."""
        self.tasks.spawn(self._forward_cancel(runtime, url, path, request_id), name=f"cancel {request_id}")

    async def _forward_cancel(self, runtime: AppRuntime, url: str, path: str, request_id: str) -> None:
        cancel_path = wire.app_cancel_path(path)
        try:
            response = await self.http.post(url + cancel_path, headers={wire.REQUEST_ID: request_id}, timeout=10)
            outcome = f"the app answered {response.status_code}"
        except httpx.HTTPError as exc:
            outcome = f"it failed ({type(exc).__name__})"
        runtime.log.request_log(request_id, f"Cancellation forwarded to {cancel_path}: {outcome}.")
        self.notify(request_id)
