"""Real apps the Playground integration tests deploy on the local gateway (cell sources, captured
like the magic does, served by ``fal run --local``)."""

#: Text in, text out; a rule only the app knows (422), scalar query parameters, a slow endpoint that
#: honours cancellation, and a streaming endpoint.
TEXT = """
import asyncio
import json

import fal
from fal.exceptions import RequestCancelledException
from fastapi import Header
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator


class Words(BaseModel):
    text: str = Field(description="Some words.", examples=["the cat sat on the mat"])
    repeat: int = Field(1, ge=1, le=5, description="How often to say them.")
    shout: bool = False

    @field_validator("text")
    @classmethod
    def polite(cls, value: str) -> str:
        if "rude" in value.split():
            raise ValueError("must be polite")
        return value


class Said(BaseModel):
    text: str
    words: int


class Wait(BaseModel):
    seconds: float = Field(30, ge=0, le=60)


class TextTools(fal.App):
    keep_alive = 300

    def setup(self):
        self.waiting = {}

    @fal.endpoint("/")
    def say(self, words: Words) -> Said:
        text = " ".join([words.text] * words.repeat)
        print(f"saying {len(text.split())} words")
        return Said(text=text.upper() if words.shout else text, words=len(text.split()))

    @fal.endpoint("/count")
    def count(self, text: str, limit: int = 3) -> dict:
        return {"first": text.split()[:limit]}

    @fal.endpoint("/slow")
    async def slow(self, wait: Wait, x_fal_request_id: str | None = Header(None)) -> dict:
        task = self.waiting[x_fal_request_id] = asyncio.create_task(asyncio.sleep(wait.seconds))
        print("waiting started")
        try:
            await task
        except asyncio.CancelledError:
            print("waiting cancelled")
            raise RequestCancelledException("cancelled by the caller")
        finally:
            self.waiting.pop(x_fal_request_id, None)
        return {"waited": wait.seconds}

    @fal.endpoint("/slow/cancel")
    async def cancel_slow(self, x_fal_request_id: str | None = Header(None)) -> dict:
        task = self.waiting.get(x_fal_request_id)
        if task is not None:
            task.cancel()
        return {"cancelled": task is not None}

    @fal.endpoint("/stream")
    def stream(self, words: Words) -> StreamingResponse:
        def events():
            said = []
            for word in words.text.split():
                said.append(word)
                yield f"data: {json.dumps({'text': ' '.join(said), 'words': len(said)})}\\n\\n"

        return StreamingResponse(events(), media_type="text/event-stream")
"""

#: An image output (fal's Image model) made with Pillow. Outputs of local apps carry the image
#: inline: ``repository="in_memory"`` is fal's built-in repository for ``data:`` URIs (uploads to
#: fal's CDN need credentials and the network).
BADGE = """
import fal
from fal.toolkit import Image
from PIL import Image as PILImage, ImageDraw
from pydantic import BaseModel, Field


class Badge(BaseModel):
    text: str = Field(description="What the badge says.", examples=["hello"])
    color: str = Field("tomato", description="Background colour (a CSS colour name).")
    width: int = Field(200, ge=64, le=512)


class Drawn(BaseModel):
    image: Image
    caption: str


class BadgeMaker(fal.App):
    @fal.endpoint("/")
    def draw(self, badge: Badge) -> Drawn:
        picture = PILImage.new("RGB", (badge.width, 64), badge.color)
        ImageDraw.Draw(picture).text((12, 24), badge.text, fill="white")
        return Drawn(image=Image.from_pil(picture, repository="in_memory"), caption=f"A badge: {badge.text}")
"""

#: A file input (``ui.field`` file): the Playground sends an upload as a ``data:`` URI; the app reads
#: it like any URL.
FILE_INFO = """
import hashlib
from urllib.request import urlopen

import fal
from fal.toolkit.pydantic import FileField
from pydantic import BaseModel


class Document(BaseModel):
    document_url: str = FileField(description="Any text file.")


class Info(BaseModel):
    size: int
    sha256: str
    content_type: str
    first_line: str


class FileInfo(fal.App):
    @fal.endpoint("/")
    def inspect(self, document: Document) -> Info:
        with urlopen(document.document_url) as response:
            content = response.read()
            content_type = response.headers.get_content_type()
        first = content.decode(errors="replace").splitlines()[0] if content else ""
        return Info(size=len(content), sha256=hashlib.sha256(content).hexdigest(), content_type=content_type,
                    first_line=first)
"""

#: Realtime endpoints (``@fal.realtime``): a badge per message, and a stream of ``count`` badges per
#: message; the text "fail" makes the app fail (fal then sends its error message and closes).
LIVE_BADGES = """
from collections.abc import Iterator

import fal
from fal.toolkit import Image
from PIL import Image as PILImage, ImageDraw
from pydantic import BaseModel, Field


class Badge(BaseModel):
    text: str = Field(description="What the badge says.", examples=["live"])
    count: int = Field(1, ge=1, le=5, description="Badges per message (/frames).")


class Drawn(BaseModel):
    image: Image
    caption: str


def draw(text: str) -> Drawn:
    if text == "fail":
        raise ValueError("cannot draw 'fail'")
    picture = PILImage.new("RGB", (96, 32), "navy")
    ImageDraw.Draw(picture).text((6, 10), text, fill="white")
    return Drawn(image=Image.from_pil(picture, repository="in_memory"), caption=f"Live: {text}")


class LiveBadges(fal.App):
    keep_alive = 300

    @fal.endpoint("/")
    def once(self, badge: Badge) -> Drawn:
        return draw(badge.text)

    @fal.realtime("/realtime")
    def badge(self, badge: Badge) -> Drawn:
        return draw(badge.text)

    @fal.realtime("/frames")
    def frames(self, badge: Badge) -> Iterator[Drawn]:
        for i in range(badge.count):
            yield draw(f"{badge.text} {i + 1}")
"""
