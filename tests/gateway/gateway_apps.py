"""Small real apps the gateway tests deploy (cell sources, captured like the magic does)."""

ECHO = """
import asyncio
import json
import os
import time

import fal
from fal.exceptions import RequestCancelledException
from fastapi import Header
from fastapi.responses import StreamingResponse
from pydantic import BaseModel


def runner() -> str:  # this runner as the gateway names it (a sandboxed runner's pid is its sandbox's own)
    return os.environ["FAL_NOTEBOOK_RUNNER"].rpartition("/")[2]


class Words(BaseModel):
    text: str
    delay: float = 0.0


class Counted(BaseModel):
    words: int
    runner: str
    version: int = VERSION


class Echo(fal.App):
    keep_alive = 300

    def setup(self):
        self.tasks = {}

    @fal.endpoint("/")
    def count(self, data: Words) -> Counted:
        print(f"counting {data.text!r}")
        time.sleep(data.delay)
        print("done counting")
        return Counted(words=len(data.text.split()), runner=runner())

    @fal.endpoint("/slow")
    async def slow(self, data: Words, x_fal_request_id: str | None = Header(None)) -> Counted:
        task = asyncio.create_task(asyncio.sleep(data.delay))
        self.tasks[x_fal_request_id] = task
        print("slow work started")
        try:
            await task
        except asyncio.CancelledError:
            print("cancelled by the caller")
            raise RequestCancelledException("cancelled by the caller")
        finally:
            self.tasks.pop(x_fal_request_id, None)
        return Counted(words=len(data.text.split()), runner=runner())

    @fal.endpoint("/slow/cancel")
    async def cancel_slow(self, x_fal_request_id: str | None = Header(None)) -> dict:
        task = self.tasks.get(x_fal_request_id)
        if task is not None:
            task.cancel()
        return {"cancelled": task is not None}

    @fal.endpoint("/repeat")
    def repeat(self, word: str, times: int = 1) -> dict:
        return {"words": [word] * times}

    @fal.endpoint("/crash")
    def crash(self) -> dict:
        print("this request kills its runner")
        os._exit(1)

    @fal.endpoint("/stream")
    def stream(self, data: Words):
        def events():
            for word in data.text.split():
                yield f"data: {json.dumps({'word': word})}\\n\\n"

        return StreamingResponse(events(), media_type="text/event-stream")
"""


def echo(version: int = 1) -> str:
    """The Echo app; ``version`` changes its code (a redeploy must replace the runners)."""
    return f"VERSION = {version}\n" + ECHO


SERVER = """
import os

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


def runner() -> str:  # this runner as the gateway names it (a sandboxed runner's pid is its sandbox's own)
    return os.environ["FAL_NOTEBOOK_RUNNER"].rpartition("/")[2]


class Item(BaseModel):
    name: str


@app.post("/")
def create(item: Item) -> dict:
    print(f"creating {item.name}")
    return {"created": item.name, "runner": runner()}
"""

CRASHING = """
import os
import threading

import fal


class Crashing(fal.App):
    def setup(self):
        print("loading the model")
        threading.Timer(1.0, os._exit, (3,)).start()

    @fal.endpoint("/")
    def run(self) -> dict:
        return {}
"""

BROKEN = """
import fal


class Broken(fal.App):
    def setup(self):
        raise RuntimeError("the weights are missing")

    @fal.endpoint("/")
    def run(self) -> dict:
        return {}
"""

ENV_PROBE = """
import sys

import fal
from pydantic import BaseModel


class Where(BaseModel):
    prefix: str


class EnvProbe(fal.App):
    @fal.endpoint("/")
    def where(self) -> Where:
        return Where(prefix=sys.prefix)
"""

SECRET_SERVER = """
import os

from fastapi import FastAPI

app = FastAPI()


@app.post("/")
def leak() -> dict:
    print("the token is", os.environ["MY_SERVICE_TOKEN"])
    return {"length": len(os.environ["MY_SERVICE_TOKEN"])}
"""

WORDS = """
import asyncio
import json
import os

import fal
from fal.exceptions import RequestCancelledException
from fastapi import Header, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field


class Words(BaseModel):
    text: str = Field(description="The words to count")
    repeat: int = Field(default=1, ge=1, le=5)


class Counted(BaseModel):
    words: int


class Gate(BaseModel):
    path: str = Field(description="The request holds its runner until this file exists")


class WordCount(fal.App):
    keep_alive = 300

    def setup(self):
        self.holds = {}

    @fal.endpoint("/")
    def count(self, data: Words) -> Counted:
        words = data.text.split() * data.repeat
        for number, word in enumerate(words):
            print(f"word {number}: {word}")
        print("counted")
        return Counted(words=len(words))

    @fal.endpoint("/hold")
    async def hold(self, gate: Gate, x_fal_request_id: str | None = Header(None)) -> dict:
        print(f"holding until {os.path.basename(gate.path)} exists")
        task = asyncio.create_task(self.wait_for(gate.path))
        self.holds[x_fal_request_id] = task
        try:
            await task
        except asyncio.CancelledError:
            print("hold cancelled")
            raise RequestCancelledException("cancelled by the caller")
        finally:
            self.holds.pop(x_fal_request_id, None)
        print("released")
        return {"released": True}

    @fal.endpoint("/hold/cancel")
    async def cancel_hold(self, x_fal_request_id: str | None = Header(None)) -> dict:
        task = self.holds.get(x_fal_request_id)
        if task is not None:
            task.cancel()
        return {"cancelled": task is not None}

    @staticmethod
    async def wait_for(path: str) -> None:
        while not os.path.exists(path):
            await asyncio.sleep(0.02)

    @fal.endpoint("/fail")
    def fail(self, data: Words) -> Counted:
        print(f"failing on {data.text!r}")
        if data.repeat > 1:
            raise HTTPException(500, f"cannot count {data.text!r} {data.repeat} times")
        raise ValueError(f"cannot count {data.text!r}")

    @fal.endpoint("/stream")
    def stream(self, data: Words):
        def events():
            for word in data.text.split():
                yield f"data: {json.dumps({'word': word})}\\n\\n"

        return StreamingResponse(events(), media_type="text/event-stream")
"""

EVENTS_SERVER = """
import json

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str


class Countdown(BaseModel):
    start: int


@app.post("/")
def create(item: Item) -> dict:
    print(f"creating {item.name}")
    return {"created": item.name}


@app.post("/countdown/stream")
def countdown(body: Countdown):
    def events():
        for n in range(body.start, 0, -1):
            yield f"data: {json.dumps({'n': n})}\\n\\n"

    return StreamingResponse(events(), media_type="text/event-stream")
"""

FIDELITY = """
import os
import time
from pathlib import Path

import fal
from fastapi import Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel


def runner() -> str:  # this runner as the gateway names it (a sandboxed runner's pid is its sandbox's own)
    return os.environ["FAL_NOTEBOOK_RUNNER"].rpartition("/")[2]


class Reply(BaseModel):
    status: int = 200
    headers: dict[str, str] = {}
    failures: int = 0  # answer `status` this many times (counted in `counter`), then 200
    counter: str = ""
    delay: float = 0.0


class Hold(BaseModel):
    path: str  # wait until this file exists


class Fidelity(fal.App):
    keep_alive = 300

    def setup(self):
        self.cancelled = set()

    def provide_hints(self) -> list[str]:
        return [f"runner-{runner()}"]

    @fal.endpoint("/")
    def reply(self, data: Reply) -> dict:
        attempt = 1
        if data.counter:
            counter = Path(data.counter)
            attempt = int(counter.read_text()) + 1 if counter.exists() else 1
            counter.write_text(str(attempt))
        print(f"attempt {attempt} on {runner()}")
        time.sleep(data.delay)
        if attempt <= data.failures or not data.counter and data.status != 200:
            return JSONResponse({"detail": f"failing attempt {attempt}"}, data.status, headers=data.headers)
        return {"attempt": attempt, "runner": runner()}

    @fal.endpoint("/headers")
    def headers(self, request: Request) -> dict:
        return {"headers": dict(request.headers), "query": request.url.query, "runner": runner()}

    @fal.endpoint("/hold-stream")
    def hold_stream(self, data: Hold, x_fal_request_id: str | None = Header(None)):
        def events():
            print("stream started")
            try:
                yield "data: {}\\n\\n"
                while not Path(data.path).exists():
                    if x_fal_request_id in self.cancelled:
                        print("stream cancelled")
                        return
                    time.sleep(0.05)
                yield "data: {}\\n\\n"
            finally:
                print("stream ended")

        return StreamingResponse(events(), media_type="text/event-stream")

    @fal.endpoint("/hold-stream/cancel")
    def cancel_stream(self, x_fal_request_id: str | None = Header(None)) -> dict:
        self.cancelled.add(x_fal_request_id)
        return {}
"""
