"""A small real fal.App with a ``@fal.realtime`` endpoint and a websocket endpoint (a cell's source,
captured like the magic does): the gateway's, the Playground's and the browser's realtime tests deploy it."""

#: ``/realtime``: a Ping in, a Pong out (a message without ``text`` makes fal end the session with its
#: error message); ``/ws``: text frames reversed, ``who`` answers the caller's key id, ``bye`` makes the app
#: close the connection (code 4000).
LIVE = """
import fal
from fastapi import WebSocket
from pydantic import BaseModel


class Ping(BaseModel):
    text: str


class Pong(BaseModel):
    upper: str


class Live(fal.App):
    keep_alive = 300

    @fal.realtime("/realtime")
    def live(self, data: Ping) -> Pong:
        return Pong(upper=data.text.upper())

    @fal.endpoint("/ws", is_websocket=True)
    async def reverse(self, websocket: WebSocket) -> None:
        await websocket.accept()
        caller = websocket.headers.get("x-fal-caller-user-id", "")
        async for text in websocket.iter_text():
            if text == "who":
                await websocket.send_text(caller)
            elif text == "bye":
                await websocket.close(4000, "bye")
                return
            else:
                await websocket.send_text(text[::-1])

    @fal.endpoint("/")
    def ok(self) -> dict:
        return {"ok": True}
"""
