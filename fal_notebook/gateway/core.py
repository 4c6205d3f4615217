"""The gateway's state in one object: apps, the durable queue, change notifications, housekeeping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from .. import wire
from ..generate.project import AppProject
from ..wire import COMPLETED, IN_PROGRESS, IN_QUEUE, Completed, InProgress, Queued, Status
from . import retries
from .apps import AppRuntime, Build, Unavailable
from .containers import remove_containers
from .envs import OnLine
from .gpus import NO_DRIVER, GpuPool
from .headers import runner_hint
from .limits import Limits, variable
from .paths import db_path
from .prepare import DeploySpec, digest, prepare, snapshot
from .runners import Launch, OnOutput, Runner, kill_orphans
from .states import AppStatus
from .store import INLINE_BODY, Store
from .supervisor import Clock, Supervisor
from .upstream import Upstream
from .webhooks import Delivery, Webhooks, signing_key

TICK = 0.25
PURGE_EVERY = 60.0


class QueueFull(Exception):
    """The gateway's queue holds ``max_queue`` requests already."""


class Gateway:
    def __init__(self, *, key: str, state_id: str, max_queue: int = Limits.max_queue, gpus: GpuPool | None = None):
        self.key = key
        self.gpus = gpus or GpuPool([], NO_DRIVER)  # the GPUs runners take (gpus.py)
        self.state_id = state_id
        self.max_queue = max_queue
        self.store = Store(db_path())
        self.http = httpx.AsyncClient(timeout=None)  # health checks, schemas, cancellations
        self.upstream = Upstream()  # the calls themselves
        self.apps: dict[str, AppRuntime] = {}
        self._records = self.store.apps()
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self.tasks = Supervisor()
        self.clock = Clock()
        self.webhooks = Webhooks(self.http, signing_key(), self.tasks, self.clock, self.store)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Restore the deployed apps and the queue after a (re)start."""
        kill_orphans(self.state_id)
        if any((record.get("spec") or {}).get("env") == "docker" for record in self._records.values()):
            await asyncio.to_thread(remove_containers, self.state_id)
        for name, record in self._records.items():
            stopped = record["status"] == AppStatus.STOPPED or not record.get("spec")
            runtime = self.apps[name] = AppRuntime(name, self, stopped=stopped, auth=record.get("auth"))
            if stopped:
                continue
            spec = DeploySpec(**record["spec"])
            secrets = record.get("secret_names") or []
            if secrets:  # their values live in memory only: the next deploy brings them back
                runtime.event(
                    f"Secrets {', '.join(secrets)} are not kept across gateway restarts: the runners see the "
                    "gateway's own environment until the app is deployed again."
                )
            if record.get("revision"):
                digest = record["digest"] + ("-without-secrets" if secrets else "")
                runtime.restore(spec, digest, record["revision"])
            else:
                runtime.deploy(spec, "restored", copy=True)
        for row in self.store.in_progress():
            app = self.apps.get(row["app"])
            if app is None or app.status == AppStatus.STOPPED:
                self._end(row["id"], "The gateway restarted while the request ran, and its app is gone.")
                continue
            decision = self._interrupted(row)
            if not decision.retry:
                self._end(
                    row["id"],
                    f"The gateway restarted while the request ran, and it cannot be retried: {decision.reason}.",
                )
                continue
            self.store.requeue(row["id"])
            app.request_log(row["id"], "The gateway restarted while this request ran; retrying it.")
        for name, runtime in self.apps.items():
            for row in self.store.queued(name):
                if runtime.status == AppStatus.STOPPED:
                    self._end(row["id"], f"App {name} is stopped.")
                else:
                    runtime.enqueue(
                        row["id"],
                        priority=row["priority"],
                        order=row["created"],
                        deadline=row["start_deadline"],
                        hint=runner_hint(json.loads(row["headers"])),
                    )
        for row in self.store.pending_webhooks():  # deliveries the gateway stopped before they ended
            self.webhooks.deliver(self._delivery(row))
        self.store.purge()
        self.tasks.spawn(self._keep_house(), name="housekeeping")

    async def close(self) -> None:
        """Stop every runner; the apps stay deployed and come back with the next start."""
        for runtime in self.apps.values():
            runtime.close()
        await asyncio.gather(*(r.stop() for rt in self.apps.values() for r in list(rt.runners)), return_exceptions=True)
        await self.tasks.close()  # webhook deliveries still under way too
        for runtime in self.apps.values():
            runtime.close_log()
        await self.http.aclose()
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

    def _interrupted(self, row: Any) -> retries.Decision:
        """fal's rules (retries.decide) for a request whose runner went with the previous gateway: a
        lost connection, under the app's own retry settings (recorded with the app). Its failures per
        condition were in that gateway's memory, so all its earlier attempts count as lost connections:
        a retry never goes beyond the app's budget."""
        stored = json.loads(row["headers"])
        recorded = (self._records.get(row["app"]) or {}).get("retry") or {}
        policy = retries.Policy(budgets=recorded.get("budgets") or {}, skip=frozenset(recorded.get("skip") or ()))
        return retries.decide(
            retries.Attempt(503, {}, retries.DISCONNECTED),
            request_headers=stored,
            policy=policy,
            attempts=row["attempts"],
            failures={wire.CONNECTION_ERROR: max(row["attempts"] - 1, 0)},
            owner=bool(stored.get(wire.CALLER_ID)),
            now=self.clock.time(),
            deadline=row["start_deadline"],
        )

    def _end(self, request_id: str, detail: str) -> None:
        self.store.complete(
            request_id,
            503,
            wire.encode_error_bytes(detail, wire.RUNNER_DISCONNECTED),
            "application/json",
            error=detail,
            error_type=wire.RUNNER_DISCONNECTED,
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
    def deploy(self, name: str, spec: DeploySpec) -> dict[str, Any]:
        """Register or replace app ``name``; returns its info with the revision being rolled out."""
        project = AppProject.load(spec.path)
        if project.name != name:
            raise ValueError(f"The project in {spec.path} is app {project.name!r}, not {name!r}.")
        runtime = self.apps.get(name)
        if runtime is None:
            runtime = self.apps[name] = AppRuntime(name, self)
        if runtime.current is None:  # nothing serves yet: the new revision's auth mode applies at once
            runtime.auth_mode = project.config.auth or "private"
        number = runtime.deploy(spec, digest(project, spec, self.key))
        self.save_app(runtime)
        return {**runtime.info(), "requested": number}

    async def remove(self, name: str) -> bool:
        runtime = self.apps.get(name)
        if runtime is None:
            return False
        await runtime.stop()
        return True

    def serving(self, name: str) -> AppRuntime | None:
        runtime = self.apps.get(name)
        return runtime if runtime is not None and runtime.status != AppStatus.STOPPED else None

    def save_app(self, runtime: AppRuntime) -> None:
        current = runtime.current
        spec = current.spec if current else runtime.spec
        known = current is not None and current.config is not None  # else the revision is not prepared yet
        retry = _policy_record(current.settings.retry) if current is not None and known else None
        record = {
            "status": runtime.status,
            "error": runtime.error,
            "auth": runtime.auth_mode,
            "revision": current.number if current else None,
            "digest": current.digest if current else None,
            "retry": retry if known else self._records.get(runtime.name, {}).get("retry"),
            "spec": spec.public() if spec else None,
            "secret_names": sorted(spec.secrets) if spec else [],
            "updated": self.clock.time(),
        }
        self._records[runtime.name] = record
        self.store.save_app(runtime.name, record)

    def last_revision(self, name: str) -> int:
        return (self._records.get(name) or {}).get("revision") or 0

    def completed(self, request_id: str) -> None:
        """A queued request ended: deliver its webhook, if it has one."""
        row = self.store.get(request_id)
        if row is not None and row["webhook"]:
            self.webhooks.deliver(self._delivery(row))

    def _delivery(self, row: Any) -> Delivery:
        """The webhook delivery of a completed request, from its stored row and answer."""
        runtime = self.apps.get(row["app"])
        answer = self.store.result(row["id"])
        assert answer is not None, "a webhook is delivered for a completed request"
        return Delivery(
            url=row["webhook"],
            request_id=row["id"],
            gateway_request_id=wire.gateway_request_id(row["id"], row["attempts"]),
            user_id=json.loads(row["headers"]).get(wire.CALLER_ID) or "anonymous",
            status=answer["result_status"],
            body=answer["result_body"],
            log=runtime.event if runtime is not None else lambda _line: None,
            attempts=row["webhook_attempts"],
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
        if runtime.status in (AppStatus.FAILED, AppStatus.STOPPED):
            raise Unavailable(runtime.unavailable_reason())  # a crash-looping app queues: it may come back
        if sum(len(rt.queued) for rt in self.apps.values()) >= self.max_queue:
            raise QueueFull(
                f"The gateway's queue holds {self.max_queue} requests already ({variable('max_queue')}); "
                "retry when some have run."
            )
        request_id = str(uuid.uuid4())
        deadline = self.clock.time() + timeout if timeout else None
        inline = len(body) <= INLINE_BODY  # small bodies go with the row; large ones to a file, off the loop
        if not inline:
            await asyncio.to_thread(self.store.save_body, request_id, body)
            if runtime.status in (AppStatus.FAILED, AppStatus.STOPPED):  # it changed while the body was written
                raise Unavailable(runtime.unavailable_reason())  # (an unused body file, as after a crash)
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
        runtime.enqueue(request_id, priority=priority, deadline=deadline, hint=runner_hint(headers))
        return request_id

    def status(self, row: Any, *, with_logs: bool) -> Status:
        """The request's status (its logs only when asked for: they cost a query)."""
        if row["status"] == IN_QUEUE:
            return Queued(self.store.queue_position(row))
        logs = self.store.logs(row["id"]) if with_logs else []
        if row["status"] == IN_PROGRESS:
            return InProgress(logs)
        metrics = {} if row["inference_time"] is None else {"inference_time": row["inference_time"]}
        return Completed(logs, metrics, row["error"], row["error_type"])

    async def cancel(self, runtime: AppRuntime | None, row: Any) -> str:
        """Queued: removed, ends with 499. Running: forwarded to the app's ``<path>/cancel``.
        Returns fal's answer (``CANCELLATION_REQUESTED``, ``ALREADY_COMPLETED``)."""
        if row["status"] == COMPLETED:
            return wire.ALREADY_COMPLETED
        if runtime is not None and row["status"] == IN_QUEUE and runtime.cancel_queued(row["id"]):
            detail = "Request cancelled while in the queue."
            self.store.complete(
                row["id"],
                499,
                wire.encode_error_bytes(detail, wire.CLIENT_CANCELLED),
                "application/json",
                error=detail,
                error_type=wire.CLIENT_CANCELLED,
            )
            self.notify(row["id"])
            self.completed(row["id"])
            return wire.CANCELLATION_REQUESTED
        self.store.request_cancel(row["id"])
        if runtime is not None and (runner := runtime.runner_of(row["id"])) is not None:
            self.forward_cancel(runtime, runner.url, row["path"], row["id"])
        return wire.CANCELLATION_REQUESTED

    def forward_cancel(self, runtime: AppRuntime, url: str, path: str, request_id: str) -> None:
        """Ask the app to cancel a running request (``<path>/cancel``), in the background."""
        self.tasks.spawn(self._forward_cancel(runtime, url, path, request_id), name=f"cancel {request_id}")

    async def _forward_cancel(self, runtime: AppRuntime, url: str, path: str, request_id: str) -> None:
        path = path.split("?", 1)[0]  # the query string was the call's, not the cancel's
        target = url + path.rstrip("/") + "/cancel"
        try:
            response = await self.http.post(target, headers={wire.REQUEST_ID: request_id}, timeout=10)
            outcome = f"the app answered {response.status_code}"
        except httpx.HTTPError as exc:
            outcome = f"it failed ({type(exc).__name__})"
        runtime.request_log(request_id, f"Cancellation forwarded to {path.rstrip('/')}/cancel: {outcome}.")
        self.notify(request_id)


def _policy_record(policy: retries.Policy) -> dict[str, Any]:
    """An app's retry settings as its record keeps them (for the requests a restart interrupts)."""
    return {"budgets": dict(policy.budgets), "skip": sorted(policy.skip)}
