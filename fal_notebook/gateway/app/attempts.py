"""Requests on runners: one attempt of a queued request (sent, its answer classified the way fal's
queue does, retried on fal's conditions, or ended), and the hop that sends any request, queued or
sync, to a runner.

Every accepted request ends: with the app's answer, with an explicit error in fal's shape when it
cannot be forwarded or its runner is lost and fal's rules do not retry it, or with a 500 when the
gateway itself fails while running it. The runner's slot is given back on every way out.
"""

from __future__ import annotations

import asyncio
import json

from ... import wire
from ...wire import ErrorType, RequestStatus
from .. import retries
from ..headers import app_headers, endpoint_of, runner_hints
from ..runners import Runner
from ..store import Request
from ..upstream import Response, UpstreamError
from .host import Host
from .lifecycle import Lifecycle
from .log import AppLog
from .outcome import Outcome, finish
from .pool import RunnerPool
from .queue import Unavailable, Work, WorkQueue
from .revision import Revisions

#: Time for output a runner writes after its answer (see _output_settled) to arrive.
LATE_OUTPUT = 0.02


class Attempts:
    def __init__(
        self,
        name: str,
        host: Host,
        revisions: Revisions,
        lifecycle: Lifecycle,
        log: AppLog,
        pool: RunnerPool,
        queue: WorkQueue,
    ):
        self.name = name
        self.host = host
        self.clock = host.clock
        self.revisions = revisions
        self.lifecycle = lifecycle
        self.log = log
        self.pool = pool
        self.queue = queue

    # -- queued requests -----------------------------------------------------------------------
    def execute(self, work: Work, runner: Runner) -> None:
        """Run a queued request on the runner it was handed to, in the background."""
        self.host.tasks.spawn(self._execute(work, runner), name=f"execute {work.request_id}")

    async def _execute(self, work: Work, runner: Runner) -> None:
        """One attempt; its slot is given back on every way out, and a failure of the gateway's own
        ends the request with an explicit error."""
        retry, served = None, False
        try:
            retry, served = await self._attempt(work, runner)
        except Exception as exc:
            detail = f"The gateway failed while running the request: {type(exc).__name__}: {exc}"
            finish(self.host, work.request_id, Outcome.failure_of(500, detail, ErrorType.INTERNAL_ERROR))
            raise  # the supervisor logs it
        finally:
            self.queue.release(runner, work.request_id, served=served)
        if retry is not None:
            request, delay = retry
            self.host.tasks.spawn(self._requeue_after(request, delay, work.failures), name=f"retry {request.id}")

    async def _attempt(self, work: Work, runner: Runner) -> tuple[tuple[Request, float] | None, bool]:
        """One attempt of a queued request: ``((the request, the backoff), False)`` when it is to be
        retried, else ``(None, whether the runner served it)``; a final outcome completes it."""
        store = self.host.store
        request = store.get(work.request_id)
        if request is None or request.status == RequestStatus.COMPLETED:
            return None, False
        attempts = request.attempts + 1
        store.start(request.id, attempts, runner.id)
        self.host.notify(request.id)
        endpoint = endpoint_of(wire.local_app(self.name), request.path)
        headers = app_headers(request.headers, request_id=request.id, endpoint=endpoint)
        body = store.body(request.id)
        if body is None:  # it completed meanwhile (cancelled): its body went with it
            return None, False
        outcome = await self.call(runner, "POST", request.path, body, headers)
        await self._output_settled(runner, outcome)
        cancelled = store.cancel_requested(request.id)
        decision = self._retry_decision(request, outcome, attempts, work.failures)
        failed = f"Attempt {attempts} failed ({outcome.error})"
        if not cancelled and decision.retry and self.lifecycle.takes_work:
            self.log.request_log(request.id, f"{failed}; {decision.reason}.")
            store.requeue(request.id)
            self.host.notify(request.id)
            return (request, decision.delay), False
        if decision.condition is not None and not cancelled:
            why = decision.reason if not decision.retry else f"app {self.name} is {self.lifecycle.status.value}"
            self.log.request_log(request.id, f"{failed}; not retried: {why}.")
        if cancelled and outcome.status >= 500:
            outcome = Outcome.failure_of(499, "Request cancelled.", ErrorType.CLIENT_CANCELLED)
        elif cancelled and outcome.status == 499:
            outcome.error_type = outcome.error_type or ErrorType.CLIENT_CANCELLED
        finish(self.host, request.id, outcome)
        if outcome.status < 500:
            self.lifecycle.served()
        return None, True

    async def _requeue_after(self, request: Request, delay: float, failures: dict[str, int]) -> None:
        """Queue a request again after fal's backoff, with the caller's start deadline kept."""
        await self.clock.sleep(delay)
        current = self.host.store.get(request.id)
        if current is None or current.status == RequestStatus.COMPLETED:
            return
        if current.cancel_requested:
            finish(self.host, request.id, Outcome.failure_of(499, "Request cancelled.", ErrorType.CLIENT_CANCELLED))
            return
        try:
            self.queue.resume(request, failures=failures)
        except Unavailable as exc:
            finish(self.host, request.id, Outcome.failure_of(503, str(exc), ErrorType.RUNNER_SCHEDULING_FAILURE))

    async def _output_settled(self, runner: Runner, outcome: Outcome) -> None:
        """Wait until the runner's output about this attempt is in the request's logs. A runner
        writes it before answering, so reading its pipes is enough; but a server logs an error's
        traceback after its 500, and docker's client relays a container's output on its own
        schedule: those get LATE_OUTPUT first."""
        if outcome.status >= 500 or runner.launch.image is not None:
            await self.clock.sleep(LATE_OUTPUT)
        runner.read_output()

    def _retry_decision(
        self, request: Request, outcome: Outcome, attempts: int, failures: dict[str, int]
    ) -> retries.Decision:
        """fal's rules (retries.decide) for this attempt; ``failures`` are counted per condition."""
        decision = retries.decide(
            outcome.attempt,
            request_headers=request.headers,
            policy=self.revisions.settings.retry,
            attempts=attempts,
            failures=failures,
            owner=bool(request.headers.get(wire.CALLER_ID)),  # the key's holder owns every local app
            now=self.clock.time(),
            deadline=request.start_deadline,
        )
        if decision.condition is not None:
            failures[decision.condition] = failures.get(decision.condition, 0) + 1
        return decision

    # -- the hop to a runner -------------------------------------------------------------------
    async def send(
        self,
        runner: Runner,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        *,
        stream: bool = False,
    ) -> Response | Outcome:
        """Send one request to a runner; an Outcome when it cannot be forwarded, times out or the
        runner is lost."""
        timeout = self.revisions.current.settings.request_timeout if self.revisions.current else None
        started = self.clock.monotonic()
        try:
            async with asyncio.timeout(timeout):
                response = await self.host.upstream.send(method, runner.url + path, content=body, headers=headers)
                if not stream:
                    await response.aread()
        except ValueError as exc:  # a header value HTTP cannot carry (the door refuses them): the runner is fine
            detail = f"The request cannot be forwarded to the app: {exc}"
            return Outcome.failure_of(400, detail, ErrorType.BAD_REQUEST)
        except TimeoutError:
            detail = f"Request timed out after request_timeout={timeout:g} s."
            self.pool.retire(runner, f"{detail} Runner {runner.id} is restarted.")
            elapsed = self.clock.monotonic() - started
            return Outcome.failure_of(
                504, detail, ErrorType.REQUEST_TIMEOUT, failure=retries.TIMED_OUT, elapsed=elapsed
            )
        except UpstreamError as exc:
            detail = f"Runner {runner.id} disconnected during the request ({exc})."
            self.pool.retire(runner, f"{detail} It is replaced. Its last output:\n{runner.tail_text()}")
            elapsed = self.clock.monotonic() - started
            return Outcome.failure_of(
                503, detail, ErrorType.RUNNER_DISCONNECTED, failure=retries.DISCONNECTED, elapsed=elapsed
            )
        hints = runner_hints(response.headers)
        if hints is not None:
            runner.hints = hints
        if retries.stops_runner(retries.Attempt(response.status_code, response.headers)):
            said = "" if response.status_code == 503 else f" with {wire.STOP_RUNNER}"
            self.pool.retire(runner, f"Runner {runner.id} answered {response.status_code}{said}: it is replaced.")
        return response

    async def call(self, runner: Runner, method: str, path: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """One request to a runner, classified the way fal's queue does."""
        started = self.clock.monotonic()
        response = await self.send(runner, method, path, body, headers)
        if isinstance(response, Outcome):
            return response
        status = response.status_code
        outcome = Outcome(
            status,
            response.content,
            response.headers.get("content-type", "application/json"),
            elapsed=self.clock.monotonic() - started,
            headers=dict(response.headers),
        )
        if status >= 400:
            outcome.error = _detail(response)
            outcome.body, outcome.error_type = wire.runner_error(
                status, outcome.body, response.headers.get(wire.ERROR_TYPE)
            )
        return outcome


def _detail(response: Response) -> str:
    """The app's error detail as text (its ``detail``, else its whole answer)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:2000]
    detail, _ = wire.decode_error(body)
    return detail if isinstance(detail, str) else json.dumps(detail)
