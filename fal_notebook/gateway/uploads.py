"""fal's upload protocols at the door of the gateway's file store (filestore.py), so that fal's SDK in
a runner and fal_client in a user's process store files here unmodified (docs/fal-conformance.md,
"Storage" and "Uploads"):

- fal's REST storage API, as fal's SDK speaks it to ``https://$FAL_REST_HOST`` (fal
  ``toolkit/file/providers/fal.py``) and fal_client to ``rest.fal.ai``: ``POST /storage/auth/token``,
  ``POST /storage/upload/initiate`` then ``PUT <upload_url>``, and for large files
  ``POST /storage/upload/initiate-multipart``, ``PUT <upload_url>/<n>``, ``POST <upload_url>/complete``;
- fal's CDN (v3), as fal_client speaks it to ``v3.fal.media`` and the token's ``base_url``:
  ``POST /files/upload``, ``POST /files/upload/multipart``, ``PUT <access_url>/multipart/<id>/<n>``,
  ``POST <access_url>/multipart/<id>/complete``;
- fal's node-local uploader, as fal's SDK speaks it on ``$FAL_API_SOCKET`` with
  ``FAL_USE_LOCAL_UPLOADER=1`` (fal ``toolkit/file/_local_uploader.py``): ``POST /v1/uploads``, the
  ``/v1/upload-sessions`` of ``File.reserve``, ``GET /v1/uploads/<id>``;
- and the files themselves: ``GET /files/<id>/<name>``, with their content type, to anyone who has
  the URL (as fal's CDN serves them).

Starting an upload needs a key: the gateway's, or the runners' store key (``runner_key``), which opens
nothing else. The upload URLs it answers carry an unguessable id, as fal's signed URLs do.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .. import wire
from .filestore import FileStore, PendingUpload, StoredFile, StoreFull, UnknownUpload
from .limits import variable
from .paths import runner_key
from .web import error

REST_HOST, CDN_HOST, STORAGE_HOSTS = wire.STORAGE_REST_HOST, wire.STORAGE_CDN_HOST, wire.STORAGE_HOSTS
LIFECYCLE_HEADERS = ("x-fal-object-lifecycle-preference", "x-fal-object-lifecycle")
TOKEN_SCHEME = "Bearer"


def _token(gateway_key: str, key: str) -> str:
    return hmac.new(gateway_key.encode(), b"cdn token " + key.encode(), hashlib.sha256).hexdigest()


def _sent_key(request: Request) -> str | None:
    """The key (or token) of a request that may store files, None when it has none of them."""
    gateway_key: str = request.app.state.key
    keys = (gateway_key, runner_key(gateway_key))
    authorization = request.headers.get(wire.AUTHORIZATION, "")
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    for key in keys:
        if scheme.lower() == wire.KEY_SCHEME.lower() and hmac.compare_digest(value.encode(), key.encode()):
            return key
        if scheme.lower() == TOKEN_SCHEME.lower() and hmac.compare_digest(
            value.encode(), _token(gateway_key, key).encode()
        ):
            return key
    return None


def _refused() -> Response:
    return error(
        401,
        "Uploads to the gateway's store need its key: run `%fal_env` (kernel) or "
        '`eval "$(fal-notebook env --shell)"` (shell) first, or send `Authorization: Key <the gateway key>`.',
    )


def store_of(request: Request) -> FileStore:
    return request.app.state.files


def origin(request: Request) -> str:
    """Where the uploader reached the store: fal's storage hosts through the proxy are https."""
    host = request.headers.get("host", "")
    if host.split(":", 1)[0] in STORAGE_HOSTS:
        return f"https://{host.split(':', 1)[0]}"
    return f"{request.url.scheme}://{host}" if host else str(request.base_url).rstrip("/")


def file_url(request: Request, stored: StoredFile | PendingUpload) -> str:
    """A file's public URL, on the gateway's plain listener (curl, browsers, runners, fal-js, fal_client)."""
    file_id = stored.file_id if isinstance(stored, PendingUpload) else stored.id
    return f"{request.app.state.files_origin}/files/{file_id}/{quote(stored.name)}"


def _lifecycle(request: Request) -> str | None:
    return next((request.headers[h] for h in LIFECYCLE_HEADERS if h in request.headers), None)


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The request's body as it arrives; a body silent for the gateway's body timeout is dropped."""
    timeout = request.app.state.limits.body_timeout
    stream = request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(anext(stream), timeout)
        except StopAsyncIteration:
            return
        if chunk:
            yield chunk


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body() if int(request.headers.get("content-length") or 0) < 1 << 20 else b""
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def _stored(work: Any) -> Response | None:
    """Run a store operation, answering its failures in fal's error shape."""
    try:
        await work
    except StoreFull as full:
        return error(
            507,
            f"The gateway's file store is full ({full.args[0]} bytes; {variable('store_max')}). Remove files "
            f"or raise the limit; files expire after {variable('store_ttl')} seconds.",
        )
    except UnknownUpload as unknown:
        return error(404, f"No upload in progress by that id ({unknown}): start it again.")
    except TimeoutError:
        return error(408, "The upload's body stopped arriving.")
    return None


# -- fal's REST storage API ---------------------------------------------------------------------------
async def auth_token(request: Request) -> Response:
    key = _sent_key(request)
    if key is None:
        return _refused()
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    return JSONResponse(
        {
            "token": _token(request.app.state.key, key),
            "token_type": TOKEN_SCHEME,
            "base_url": f"https://{CDN_HOST}" if origin(request) == f"https://{REST_HOST}" else origin(request),
            "expires_at": expires.isoformat(),
        }
    )


async def initiate(request: Request) -> Response:
    if _sent_key(request) is None:
        return _refused()
    data = await _json(request)
    upload = store_of(request).start(data.get("file_name"), data.get("content_type"), _lifecycle(request))
    return JSONResponse(
        {"upload_url": f"{origin(request)}/storage/upload/{upload.id}", "file_url": file_url(request, upload)}
    )


async def upload_whole(request: Request) -> Response:
    store = store_of(request)
    upload: PendingUpload | None = None

    async def work() -> None:
        nonlocal upload
        upload = store.pending(request.path_params["upload"])
        await store.receive(upload, _body(request))
        await asyncio.to_thread(store.complete, upload)

    return await _stored(work()) or Response(status_code=200)


async def upload_part(request: Request) -> Response:
    store = store_of(request)
    etag = ""

    async def work() -> None:
        nonlocal etag
        upload = store.pending(request.path_params["upload"])
        etag = await store.receive(upload, _body(request), request.path_params["part"])

    return await _stored(work()) or Response(status_code=200, headers={"ETag": etag})


def _part_numbers(data: dict[str, Any]) -> list[int] | None:
    parts = data.get("parts")
    if not isinstance(parts, list):
        return None
    numbers = [p.get("partNumber", p.get("part_number")) for p in parts if isinstance(p, dict)]
    found = [n for n in numbers if isinstance(n, int)]
    return sorted(found) if len(found) == len(parts) else None


async def complete(request: Request) -> Response:
    store = store_of(request)
    data = await _json(request)
    stored: list[StoredFile] = []

    async def work() -> None:
        upload = store.pending(request.path_params["upload"])
        stored.append(await asyncio.to_thread(store.complete, upload, _part_numbers(data)))

    failed = await _stored(work())
    return failed or JSONResponse(
        {"file_url": file_url(request, stored[0]), "access_url": file_url(request, stored[0])}
    )


# -- fal's CDN (v3) -----------------------------------------------------------------------------------
async def cdn_upload(request: Request) -> Response:
    if _sent_key(request) is None:
        return _refused()
    store = store_of(request)
    stored: list[StoredFile] = []

    async def work() -> None:
        name, kind = request.headers.get(wire.FILE_NAME), request.headers.get("content-type")
        stored.append(await store.put(name, kind, _body(request), _lifecycle(request)))

    failed = await _stored(work())
    return failed or JSONResponse({"access_url": file_url(request, stored[0])})


async def cdn_multipart(request: Request) -> Response:
    if _sent_key(request) is None:
        return _refused()
    headers = request.headers
    upload = store_of(request).start(headers.get(wire.FILE_NAME), headers.get("content-type"), _lifecycle(request))
    return JSONResponse({"access_url": file_url(request, upload), "uploadId": upload.id})


# -- fal's node-local uploader (FAL_USE_LOCAL_UPLOADER, on a socket) ----------------------------------
def _accepted(
    request: Request, upload_id: str, stored: StoredFile | PendingUpload, state: str, status: int
) -> Response:
    return JSONResponse({"state": state, "upload_id": upload_id, "file_url": file_url(request, stored)}, status)


async def local_upload(request: Request) -> Response:
    if _sent_key(request) is None:
        return _refused()
    store = store_of(request)
    stored: list[StoredFile] = []
    name = request.headers.get(wire.FILE_NAME)

    async def work() -> None:
        stored.append(await store.put(name, request.headers.get("content-type"), _body(request), _lifecycle(request)))

    failed = await _stored(work())
    return failed or _accepted(request, stored[0].id, stored[0], "accepted_local", 202)


async def local_upload_state(request: Request) -> Response:
    found = store_of(request).get(request.path_params["upload"])
    return JSONResponse({"state": "completed"}) if found else error(404, "No such upload.")


async def local_session(request: Request) -> Response:
    if _sent_key(request) is None:
        return _refused()
    headers = request.headers
    upload = store_of(request).start(headers.get(wire.FILE_NAME), headers.get("content-type"), _lifecycle(request))
    return _accepted(request, upload.id, upload, "receiving", 201)


async def local_session_body(request: Request) -> Response:
    store = store_of(request)

    async def work() -> None:
        await store.receive(store.pending(request.path_params["upload"]), _body(request))

    return await _stored(work()) or Response(status_code=204)


async def local_session_finish(request: Request) -> Response:
    store = store_of(request)
    stored: list[StoredFile] = []

    async def work() -> None:
        stored.append(await asyncio.to_thread(store.complete, store.pending(request.path_params["upload"])))

    failed = await _stored(work())
    return failed or _accepted(request, stored[0].id, stored[0], "accepted_local", 202)


async def local_session_delete(request: Request) -> Response:
    store = store_of(request)
    try:
        store.abort(store.pending(request.path_params["upload"]))
    except UnknownUpload:
        pass
    return Response(status_code=202)


# -- the files ----------------------------------------------------------------------------------------
#: Files up to this size are handed to an app inline (see ``inline_files``); larger ones stay URLs.
INLINE_MAX = 128 * 1024 * 1024


def _inlined(store: FileStore, prefix: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _inlined(store, prefix, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_inlined(store, prefix, v) for v in value]
    if isinstance(value, str) and value.startswith(prefix):
        found = store.get(value[len(prefix) :].split("/", 1)[0])
        if found is not None and found[0].size <= INLINE_MAX:
            encoded = base64.b64encode(found[1].read_bytes()).decode()
            return f"data:{found[0].content_type};base64,{encoded}"
    return value


async def inline_files(request: Request, body: bytes) -> bytes:
    """A request body for an app, with the URLs of the store's files given as ``data:`` URIs.

    fal's SDK downloads a ``File`` input only from a globally routable address (fal
    ``toolkit/utils/ssrf.py``: loopback is refused, no proxy, no setting), and Docker runners cannot
    reach the host's loopback at all; ``data:`` URIs it reads in place (``download_utils.py``)."""
    prefix = f"{request.app.state.files_origin}/files/"
    if prefix.encode() not in body:
        return body
    try:
        data = json.loads(body)
    except ValueError:
        return body
    return json.dumps(await asyncio.to_thread(_inlined, store_of(request), prefix, data)).encode()


async def serve(request: Request) -> Response:
    found = store_of(request).get(request.path_params["file"])
    if found is None:
        return error(404, "No such file: it never existed here, or it expired.")
    stored, path = found
    return FileResponse(path, media_type=stored.content_type, filename=None, headers={"Cache-Control": "private"})


_UPLOAD = "/storage/upload/{upload}"
_CDN_PART = "/files/{file}/{name}/multipart/{upload}"
_SESSION = "/v1/upload-sessions/{upload}"
ROUTES = [
    Route(wire.STORAGE_TOKEN_PATH, auth_token, methods=["POST"]),
    Route("/storage/upload/initiate", initiate, methods=["POST"]),
    Route("/storage/upload/initiate-multipart", initiate, methods=["POST"]),
    Route(_UPLOAD, upload_whole, methods=["PUT"]),
    Route(_UPLOAD + "/{part:int}", upload_part, methods=["PUT"]),
    Route(_UPLOAD + "/complete", complete, methods=["POST"]),
    Route(wire.CDN_UPLOAD_PATH, cdn_upload, methods=["POST"]),
    Route(wire.CDN_UPLOAD_PATH + "/multipart", cdn_multipart, methods=["POST"]),
    Route(_CDN_PART + "/{part:int}", upload_part, methods=["PUT"]),
    Route(_CDN_PART + "/complete", complete, methods=["POST"]),
    Route("/files/{file}/{name}", serve, methods=["GET", "HEAD"]),
    Route("/v1/uploads", local_upload, methods=["POST"]),
    Route("/v1/uploads/{upload}", local_upload_state, methods=["GET"]),
    Route("/v1/upload-sessions", local_session, methods=["POST"]),
    Route(_SESSION + "/body", local_session_body, methods=["PUT"]),
    Route(_SESSION + "/finish", local_session_finish, methods=["POST"]),
    Route(_SESSION, local_session_delete, methods=["DELETE"]),
]
