"""The gateway's HTTP surface over generated requests, against a real gateway process and a real
runner: no 500 of the gateway's own, no hang, the gateway's key and FAL_KEY in no answer, and the
gateway still answers afterwards."""

from __future__ import annotations

import socket
import uuid

import httpx
import pytest
from hypothesis import given, strategies as st

from fal_notebook.wire import parse_count

from .conftest import SECRET, count_texts, fuzz_settings, no_hang
from .test_fuzz_inputs import urls

ECHO = """
from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/")
async def run(request: Request) -> dict:
    return {"n": len(await request.body())}
"""
PUBLIC, PRIVATE = "fuzz-echo", "fuzz-private"


@pytest.fixture(scope="module")
def fuzzed(gateway):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAL_KEY", SECRET)
        gateway.deploy(ECHO, PUBLIC, auth="public")
        gateway.deploy(ECHO, PRIVATE, auth="private")
    with gateway.http() as client:
        submitted = client.post(f"/queue/local/{PUBLIC}", json={"a": 1}).json()
        gateway.wait_completed(client, submitted["status_url"])
    return gateway, submitted["request_id"]


odd_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["²", "\x00", "%00", "..", "../..", "%2e%2e", "a" * 3000, "😀", "?", "#", "//", ";"]),
)
names = st.one_of(st.sampled_from([PUBLIC, PRIVATE, "nope"]), odd_text)
suffixes = st.one_of(st.sampled_from(["", "/", "/stream", "/x/y", "/openapi.json"]), odd_text.map(lambda t: "/" + t))
TEMPLATES = [
    "/local/{app}{suffix}",
    "/queue/local/{app}{suffix}",
    "/queue/local/{app}/requests/{rid}/status",
    "/queue/local/{app}/requests/{rid}/status/stream",
    "/queue/local/{app}/requests/{rid}",
    "/queue/local/{app}/requests/{rid}/cancel",
    "/local/{app}/openapi.json",
    "/_fal_notebook/identity",
    "/_fal_notebook/apps",
    "/_fal_notebook/apps/{app}",
    "/{suffix}",
]
# Admin calls that change the gateway (deploy, stop, shut down) are fuzzed without the key only.
MUTATIONS = ("PUT", "DELETE", "POST")
header_values = st.one_of(
    odd_text,
    st.sampled_from(["nan", "inf", "-1", "0", "1e999", "0.5", "30", "low", "normal", "application/json", "text/plain"]),
)


@st.composite
def requests(draw, key: str, real_id: str):
    template = draw(st.sampled_from(TEMPLATES))
    rid = draw(st.one_of(st.just(real_id), st.just(str(uuid.uuid4())), odd_text))
    path = template.format(app=draw(names), suffix=draw(suffixes), rid=rid)
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]))
    auth = draw(st.sampled_from(["key", "none", "wrong", "odd"]))
    headers = {}
    if auth == "key" and not (path.startswith("/_fal_notebook/apps") and method in MUTATIONS):
        headers["Authorization"] = f"Key {key}"
    elif auth == "wrong":
        headers["Authorization"] = "Key not:the-key"
    elif auth == "odd":
        headers["Authorization"] = draw(odd_text)
    for name in draw(
        st.lists(
            st.sampled_from(["X-Fal-Request-Timeout", "X-Fal-Queue-Priority", "Content-Type", "X-Fal-Runner-Hint"]),
            unique=True,
            max_size=3,
        )
    ):
        headers[name] = draw(header_values)
    params = draw(st.dictionaries(st.sampled_from(["since", "logs", "fal_webhook", "x"]), header_values, max_size=2))
    body = draw(
        st.one_of(
            st.binary(max_size=200),
            st.sampled_from([b"[" * 5000 + b"]" * 5000, b'{"a": ' + b"1" * 5000 + b"}", b"{}", b"null", b""]),
        )
    )
    return method, path, headers, params, body


def printable(headers: dict[str, str]) -> dict[str, str]:
    """Headers httpx can send (no control characters, latin-1)."""
    return {k: v for k, v in headers.items() if v.isprintable() and v.isascii() and v.strip() == v}


@fuzz_settings(ci_examples=80)
@given(data=st.data())
def test_generated_requests_get_no_500_of_the_gateways_own(fuzzed, data):
    gateway, real_id = fuzzed
    method, path, headers, params, body = data.draw(requests(gateway.key, real_id), label="request")
    with no_hang(60), httpx.Client(base_url=gateway.base, timeout=30) as client:
        try:
            response = client.request(method, path, headers=printable(headers), params=params, content=body)
        except httpx.InvalidURL:
            return  # not a request httpx can send
        except httpx.RemoteProtocolError:
            response = None  # uvicorn refused the request line: fine, if the gateway still answers
    if response is not None:  # an app's own 500 is relayed with the request id; the gateway's own has none
        crashed = response.status_code == 500 and "x-fal-request-id" not in response.headers
        assert not crashed, (method, path, headers, params, body[:100], response.text[:300])
        if response.status_code > 500:  # the gateway's own 5xx are fal's errors, in fal's shape
            assert "detail" in response.json()
        assert gateway.key not in response.text and SECRET not in response.text
    with httpx.Client(base_url=gateway.base, timeout=10) as client:
        assert client.get("/_fal_notebook/identity").status_code == 200


@fuzz_settings(ci_examples=30)
@given(raw=st.one_of(st.binary(max_size=300), st.sampled_from([b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 2000 + b"\r\n"])))
def test_malformed_http_leaves_the_gateway_answering(fuzzed, raw):
    gateway, _ = fuzzed
    with no_hang(30), socket.create_connection(("127.0.0.1", gateway.port), timeout=15) as sock:
        try:
            sock.sendall(raw + b"\r\n\r\n")
            answer = sock.recv(64)
        except (TimeoutError, ConnectionError):
            answer = b""
    assert not answer.startswith(b"HTTP/1.1 500")
    with httpx.Client(base_url=gateway.base, timeout=10) as client:
        assert client.get("/_fal_notebook/identity").status_code == 200


webhook_values = st.one_of(
    urls,
    st.builds(
        lambda host, port: f"http://{host}:{port}/hook",
        st.sampled_from(["127.0.0.1", "[::1]", "localhost"]),
        count_texts,
    ),
)


@fuzz_settings(ci_examples=60)
@given(
    length=st.one_of(st.none(), count_texts),
    webhook=st.one_of(st.none(), webhook_values),
    logs=st.one_of(st.none(), count_texts),
    since=count_texts,
    wait=st.one_of(st.sampled_from(["0", "1"]), count_texts.filter(lambda t: parse_count(t) is None)),
)
def test_query_values_get_no_500(fuzzed, length, webhook, logs, since, wait):
    """The queue's own parameters of a submit (without a key, to a public app) and the admin API's
    ``since`` and ``wait``: a whole number or a URL, else a 4xx naming it (issue 20, item 8)."""
    gateway, _ = fuzzed
    params = {
        k: v for k, v in {"fal_max_queue_length": length, "fal_webhook": webhook, "logs": logs}.items() if v is not None
    }
    with no_hang(60), httpx.Client(base_url=gateway.base, timeout=30) as client:
        try:
            submitted = client.post(f"/queue/local/{PUBLIC}", params=params, json={"a": 1})
            admin = client.get(
                f"/_fal_notebook/apps/{PUBLIC}",
                params={"since": since, "wait": wait},
                headers={"Authorization": f"Key {gateway.key}"},
            )
        except httpx.InvalidURL:
            return  # not a URL httpx can send
    for response in (submitted, admin):
        assert response.status_code < 500, (params, since, wait, response.text[:300])
        assert gateway.key not in response.text and SECRET not in response.text
    with httpx.Client(base_url=gateway.base, timeout=10) as client:
        assert client.get("/_fal_notebook/identity").status_code == 200
