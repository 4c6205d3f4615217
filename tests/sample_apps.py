"""Apps whose OpenAPI documents the schema and widget tests read: real ones, generated offline by
the fal SDK (``App(_allow_init=True).openapi()``) and by FastAPI, and hand-written edge cases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import fal
from fal.toolkit import File, Image, Video
from fal.toolkit.image import ImageSize, ImageSizePreset
from fal.toolkit.pydantic import AudioField, FalBaseModel, FileField, Hidden, ImageField
from fastapi import FastAPI, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field


class Size(BaseModel):
    width: int = Field(512, ge=64, le=2048, description="Width in pixels.")
    height: int = Field(512, ge=64, le=2048)


class ImageInput(FalBaseModel):
    FIELD_ORDERS = ["prompt", "image_url"]

    image_url: str = ImageField(description="An image to start from.", examples=["https://example.com/cat.png"])
    prompt: str = Field(description="What to draw.", examples=["a cat in a hat"], min_length=1, max_length=500)
    negative_prompt: str = Field("", description="What not to draw.")
    style: Literal["photo", "anime", "sketch"] = "photo"
    steps: int = Field(20, ge=1, le=50, description="Inference steps.")
    guidance: float = Field(7.5, gt=0, lt=20)
    seed: int | None = Field(None, ge=0, le=2**31, description="Same seed, same image.")
    image_size: ImageSize | ImageSizePreset = "square_hd"
    size: Size = Size()
    tags: list[str] = []
    sizes: list[Size] = []
    enhance: bool = Field(False, json_schema_extra={"ui": {"important": True}})
    debug: bool = Hidden(Field(default=False))


class ImageOutput(BaseModel):
    images: list[Image]
    seed: int
    caption: str = ""


class ImageApp(fal.App):
    """Generates images (schema only: the tests never call it)."""

    @fal.endpoint("/")
    def generate(self, input: ImageInput) -> ImageOutput:
        raise NotImplementedError

    @fal.endpoint("/count")
    def count(self, text: str, limit: int = 3, exact: bool = False) -> dict:
        raise NotImplementedError


class FileInput(BaseModel):
    document_url: str = FileField(description="A PDF or text file.")
    voice_url: str = AudioField(None)
    video: Video | None = Field(None, description="A clip to transcribe.")
    reference_image_urls: list[str] = Field(default_factory=list)
    picture: Image = Field(description="A picture as fal's Image model.")
    language: Literal["en", "de", "fr"] | None = None
    attachment: File | None = Field(None, description="Any file, as fal's File model without FileField.")


class FileOutput(BaseModel):
    text: str
    file: File
    thumbnail: Image | None = None


class FileApp(fal.App):
    @fal.endpoint("/")
    def transcribe(self, input: FileInput) -> FileOutput:
        raise NotImplementedError


def fal_document(app: type[fal.App]) -> dict:
    return app(_allow_init=True).openapi()


# -- a Direct Server Mode app: plain FastAPI ---------------------------------------------------

server = FastAPI(title="summarizer", version="2.0")


class Summarize(BaseModel):
    text: str = Field(..., max_length=10_000)
    sentences: int = Field(3, ge=1, le=20)
    language: str | None = None
    keywords: list[str] = Field(default_factory=list, max_length=5)


class Summary(BaseModel):
    summary: str
    word_count: int


@server.post("/summarize", summary="Summarize a text")
def summarize(body: Summarize) -> Summary:
    raise NotImplementedError


@server.post("/echo")
def echo(payload: dict) -> dict:
    raise NotImplementedError


@server.get("/status")
def status() -> dict:
    raise NotImplementedError


@server.post("/items/{item_id}")
def item(item_id: int) -> dict:
    raise NotImplementedError


# -- hand-written documents --------------------------------------------------------------------

OPENAPI_30 = {
    "openapi": "3.0.3",
    "info": {"title": "legacy", "version": "1"},
    "paths": {
        "/": {
            "post": {
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/In"}}}},
                "responses": {"200": {"$ref": "#/components/responses/Ok"}},
            }
        },
        "/tree": {
            "post": {
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}},
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/list": {
            "post": {
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Point"}}
                        }
                    }
                },
                "parameters": [{"$ref": "#/components/parameters/Verbose"}],
                "responses": {"200": {"description": "ok"}},
            }
        },
    },
    "components": {
        "parameters": {
            "Verbose": {"name": "verbose", "in": "query", "schema": {"type": "boolean"}, "example": True},
        },
        "responses": {
            "Ok": {
                "description": "ok",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Out"}}},
            },
        },
        "schemas": {
            "In": {
                "type": "object",
                "required": ["name", "point"],
                "properties": {
                    "name": {"type": "string", "example": "ada", "pattern": "^[a-z]+$", "minLength": 2},
                    "nickname": {"type": "string", "nullable": True},
                    "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1},
                    "point": {"allOf": [{"$ref": "#/components/schemas/Point"}], "description": "Where."},
                    "mode": {"anyOf": [{"const": "fast"}, {"const": "slow"}], "default": "fast"},
                    "shape": {
                        "oneOf": [{"$ref": "#/components/schemas/Circle"}, {"$ref": "#/components/schemas/Square"}]
                    },
                    "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                    "groups": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "properties": {
                                "label": {"type": "string"},
                                "points": {"type": "array", "items": {"$ref": "#/components/schemas/Point"}},
                            },
                        },
                    },
                    "meta": {"type": "object", "additionalProperties": {"type": "string"}},
                    "notes": {"type": "string", "format": "textarea"},
                    "level": {"type": "integer", "enum": [1, 2, 3]},
                },
            },
            "Point": {
                "allOf": [
                    {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]},
                    {"type": "object", "properties": {"y": {"type": "number", "default": 0}}},
                ]
            },
            "Circle": {"type": "object", "title": "Circle", "properties": {"radius": {"type": "number"}}},
            "Square": {"type": "object", "title": "Square", "properties": {"side": {"type": "number"}}},
            "Node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                    "parent": {"anyOf": [{"$ref": "#/components/schemas/Node"}, {"type": "null"}]},
                },
            },
            "Out": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
        },
    },
}


class Question(BaseModel):
    question: str = Field(examples=["why is the sky blue?"])


class Answer(BaseModel):
    answer: str


class ChatApp(fal.App):
    """A streaming endpoint next to a plain one (schema only)."""

    @fal.endpoint("/")
    def ask(self, input: Question) -> Answer:
        raise NotImplementedError

    @fal.endpoint("/stream")
    def stream(self, input: Question) -> StreamingResponse:
        raise NotImplementedError


class Frame(BaseModel):
    prompt: str = Field(description="What to draw.", examples=["a cat"])
    steps: int = Field(2, ge=1, le=8)


class Drawn(BaseModel):
    image: Image
    prompt: str


class LiveApp(fal.App):
    """Realtime endpoints (one output per message, and a stream of them), a plain websocket endpoint
    and an ordinary one (schema only)."""

    @fal.endpoint("/")
    def draw(self, input: Frame) -> Drawn:
        raise NotImplementedError

    @fal.realtime("/realtime")
    def live(self, input: Frame) -> Drawn:
        """Draws each frame."""
        raise NotImplementedError

    @fal.realtime("/frames", buffering=2)
    def frames(self, input: Frame) -> Iterator[Drawn]:
        raise NotImplementedError

    @fal.endpoint("/chat", is_websocket=True)
    async def chat(self, websocket: WebSocket) -> None:
        raise NotImplementedError
