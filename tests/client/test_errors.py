"""Errors say what failed, where, and what to do, and never show a key."""

from __future__ import annotations

import httpx
import pytest

from fal_notebook.client import RequestError, connect

from .fakes import KEY, FakeFal, fake_client, recording, scripted, write_gateway_key

pytestmark = pytest.mark.usefixtures("fal_env")


def test_validation_errors_name_the_fields():
    client = fake_client(FakeFal())
    with pytest.raises(RequestError) as info:
        client.run({"steps": "many"})
    error = info.value
    assert error.status_code == 422
    assert [item["loc"] for item in error.detail] == [["body", "prompt"], ["body", "steps"]]
    message = str(error)
    assert message.startswith("local/echo: invalid input (HTTP 422)")
    assert "  - prompt: Field required" in message
    assert "  - steps: Input should be a valid integer" in message


def test_unknown_path_and_app_failure():
    transport, _ = scripted(httpx.Response(404, json={"detail": "Not Found"}))
    with pytest.raises(RequestError, match="Unknown app or path") as info:
        connect("local/nope", transport=transport).run({}, path="/missing")
    assert "POST http://127.0.0.1:8765/local/nope/missing" in str(info.value)
    with pytest.raises(RequestError, match=r"the app failed \(HTTP 500\): Internal Server Error"):
        fake_client(FakeFal()).run({"prompt": "x", "fail": True})


def test_unauthorized_says_what_to_do_and_never_shows_the_key(monkeypatch, tmp_path):
    write_gateway_key(tmp_path, "wrong-id-5678:wrong-secret-ijklmnop")
    client = fake_client(FakeFal(key=KEY))
    with pytest.raises(RequestError) as info:
        client.run({"prompt": "x"})
    assert info.value.status_code == 401
    assert "The key sent was refused" in str(info.value) and "gateway" in str(info.value)
    assert str(tmp_path / "home" / "gateway" / "key") in str(info.value)
    assert "wrong-secret" not in str(info.value) and "wrong-secret" not in repr(client)

    monkeypatch.setenv("FAL_KEY", "fal-key-id:fal-key-secret-xyz")
    transport, _ = scripted(httpx.Response(401, json={"detail": "bad key fal-key-id:fal-key-secret-xyz"}))
    fal = connect("me/app", transport=transport)
    with pytest.raises(RequestError) as info:
        fal.run({})
    text = f"{info.value} {info.value.detail} {info.value!r} {fal!r}"
    assert "Set FAL_KEY" in text and "fal-key-secret-xyz" not in text and "fal-key-id" not in text


def test_the_key_stays_out_of_reprs_and_errors():
    client = fake_client(FakeFal(key=KEY), key=KEY)
    handle = client.submit({"prompt": "x"})
    assert "key=set" in repr(client)
    for text in (repr(client), str(client), repr(handle), str(handle)):
        assert "key-secret" not in text and "key-id-1234" not in text
    with pytest.raises(RequestError) as info:
        client.run({})
    assert "key-secret" not in f"{info.value} {info.value.detail!r}"


def test_a_server_echoing_the_key_does_not_leak_it():
    def echo_headers(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403, json={"detail": f"refused {request.headers['authorization']}", "seen": {"secret": KEY.split(":")[1]}}
        )

    client = connect("http://127.0.0.1:8000", key=KEY, transport=httpx.MockTransport(echo_headers))
    with pytest.raises(RequestError) as info:
        client.run({})
    text = f"{info.value} {info.value.detail!r} {info.value!r}"
    assert "refused Key ***" in text
    assert KEY.split(":")[0] not in text and KEY.split(":")[1] not in text


def test_an_endpoint_that_does_not_speak_the_protocol():
    transport, _ = scripted(httpx.Response(200, text="<html>hello</html>"))
    with pytest.raises(RequestError, match="not JSON"):
        connect("http://127.0.0.1:8000", transport=transport).run({})
    with pytest.raises(RequestError, match="no request to follow"):
        connect("http://127.0.0.1:8000", transport=recording(body={"hello": 1})[0]).submit({})
