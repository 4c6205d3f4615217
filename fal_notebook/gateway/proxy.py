"""The storage proxy: how unmodified fal_client uploads reach the gateway's store.

fal_client sends its uploads to hosts fixed in its code (``rest.fal.ai``, ``v3.fal.media``), through
the proxy that the standard variables name (httpx honours ``HTTPS_PROXY`` and ``NO_PROXY``).
``fal-notebook env`` names this proxy (``127.0.0.1:FAL_NOTEBOOK_GATEWAY_PROXY_PORT``, with the gateway's
key as its credentials) and exempts loopback. A ``CONNECT`` to one of fal's storage hosts is answered
here: TLS with the gateway's certificate (signed by its name-constrained authority, which only the
process given the env's ``SSL_CERT_FILE`` trusts), then the store's own socket (uploads.py). A
``CONNECT`` to any other host is a plain tunnel to it, as any forward proxy makes, so the rest of the
process's https traffic goes where it went before. Without the key, or for another method, nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import ssl
from pathlib import Path

from ..wire import STORAGE_HOSTS
from .supervisor import log

HEADER_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
MAX_HEAD = 16 * 1024
CHUNK = 256 * 1024


def proxy_credentials(key: str) -> str:
    """The userinfo of the proxy's URL: the gateway's key, ``<id>:<secret>``."""
    return key


def _authorized(value: str, key: str) -> bool:
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        sent = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(sent, key.encode())


async def _answer(writer: asyncio.StreamWriter, status: str, extra: str = "", body: str = "") -> None:
    data = body.encode()
    writer.write(
        f"HTTP/1.1 {status}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {len(data)}\r\n"
        f"Connection: close\r\n\r\n".encode()
        + data
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


class StorageProxy:
    """The proxy's connection handler (for ``asyncio.start_server``)."""

    def __init__(self, *, key: str, store_socket: Path, certificate: Path, private_key: Path):
        self.key, self.store_socket = key, store_socket
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(certificate, private_key)

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except Exception as exc:  # one connection's failure is logged, never the proxy's end
            log.warning("storage proxy: %s: %s", type(exc).__name__, exc)
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEADER_TIMEOUT)
        if len(head) > MAX_HEAD:
            await _answer(writer, "431 Request Header Fields Too Large")
            return
        line, *lines = head.decode("latin-1").split("\r\n")
        method, _, rest = line.partition(" ")
        target = rest.partition(" ")[0]
        headers = {k.strip().lower(): v for k, _, v in (h.partition(":") for h in lines if h)}
        if method != "CONNECT":
            await _answer(
                writer, "405 Method Not Allowed", body="This is fal-notebook's storage proxy: CONNECT only.\n"
            )
            return
        if not _authorized(headers.get("proxy-authorization", ""), self.key):
            await _answer(
                writer,
                "407 Proxy Authentication Required",
                'Proxy-Authenticate: Basic realm="fal-notebook"\r\n',
                'The proxy needs the gateway\'s key: use what `eval "$(fal-notebook env --shell)"` sets.\n',
            )
            return
        host, _, port_text = target.rpartition(":")
        host = host.strip("[]").lower()
        if not host or not port_text.isdigit():
            await _answer(writer, "400 Bad Request", body="CONNECT needs host:port.\n")
            return
        if host in STORAGE_HOSTS and port_text == "443":
            upstream_reader, upstream_writer = await asyncio.open_unix_connection(str(self.store_socket))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await writer.start_tls(self.tls)
        else:
            try:
                upstream_reader, upstream_writer = await asyncio.wait_for(
                    asyncio.open_connection(host, int(port_text)), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                await _answer(writer, "502 Bad Gateway", body=f"{target}: {exc}\n")
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            upstream_writer.close()
