"""Ready-to-paste code for exactly one call: Python, JavaScript and cURL.

For an app on fal (endpoint id ``owner/app``) the snippets use the official clients, ``fal_client``
and ``@fal-ai/client`` (both read ``FAL_KEY``), and fal's hosts (``FAL_RUN_HOST``). For the local gateway
(``local/<name>``) they call the gateway's plain-HTTP URL directly (``httpx``, ``fetch``, ``curl``)
with the gateway's key read from its file: the official clients only build ``https://`` URLs, and the
gateway serves HTTP on 127.0.0.1, so a fal-client snippet would not run as pasted. No snippet
contains a key.

A realtime endpoint (``@fal.realtime``) gets ``fal_client.realtime(...)`` and fal-notebook's
``connect(...).realtime(...)``, a websocket endpoint ``fal_client.ws_connect(...)`` and
``connect(...).websocket(...)``. For the local gateway fal_client needs ``%fal_env`` and
``use_jwt=False``: it asks fal's own REST host for a realtime token, which cannot be redirected, and
so does ``@fal-ai/client`` (its realtime URL is fixed to fal.run): the JavaScript tab says so instead.
cURL speaks no websocket.
"""

from __future__ import annotations

import json
from typing import Any

from ..protocol import fal_hosts
from ..wire import REALTIME, STREAM_PATH, fal_app_urls, join_url

LANGUAGES = ("Python", "JavaScript", "cURL")
_WIDTH = 88


def snippets(
    endpoint_id: str,
    path: str,
    arguments: Any,
    *,
    local_url: str | None = None,
    key_file: str | None = None,
    streaming: bool = False,
    protocol: str = "http",
) -> dict[str, str]:
    """The three snippets for a call of ``path`` (query string included) with ``arguments``.
    ``local_url`` is the gateway's sync URL of the app, ``key_file`` the file with the gateway's key;
    ``protocol`` ``realtime`` or ``websocket``: ``arguments`` is one message of a session."""
    if protocol != "http":
        session = _Session(
            endpoint_id.strip("/"), path, arguments, local=local_url is not None, realtime=protocol == REALTIME
        )
        return {"Python": session.python(), "JavaScript": session.javascript(), "cURL": session.curl()}
    call = _Call(endpoint_id, path, arguments, local_url, key_file, streaming)
    return {"Python": call.python(), "JavaScript": call.javascript(), "cURL": call.curl()}


class _Session:
    """One message sent to a realtime or websocket endpoint, and the first answer read."""

    def __init__(self, app: str, path: str, message: Any, *, local: bool, realtime: bool):
        self.app, self.path, self.message, self.local, self.realtime = app, path, message, local, realtime

    def python(self) -> str:
        text = self.realtime or isinstance(self.message, str)  # a websocket takes text frames
        message = py_literal(self.message, 4, len("connection.send(json.dumps())"))
        message = message if text else f"json.dumps({message})"
        jwt = ", use_jwt=False" if self.local else ""
        opener, ours = ("realtime", "realtime") if self.realtime else ("ws_connect", "websocket")
        env = ' (after %fal_env, or eval "$(fal-notebook env --shell)" in a shell)' if self.local else ""
        return (
            ("" if text else "import json\n\n") + f"# fal_client{env}\nimport fal_client\n\n"
            f'with fal_client.{opener}("{self.app}", path="{self.path}"{jwt}) as connection:\n'
            f"    connection.send({message})\n    print(connection.recv())\n\n"
            "# fal-notebook's client\nimport fal_notebook\n\n"
            f'with fal_notebook.connect("{self.app}").{ours}("{self.path}") as connection:\n'
            f"    connection.send({message})\n    print(connection.recv())\n"
        )

    def javascript(self) -> str:
        if not self.realtime or self.local:
            why = (
                "it connects to realtime endpoints only"
                if not self.realtime
                else "its realtime URL is fixed to fal.run"
            )
            return f"// @fal-ai/client cannot reach this endpoint ({why}): use the Python snippet.\n"
        return (
            'import { fal } from "@fal-ai/client";\n\n'
            f'const connection = fal.realtime.connect("{self.app}", {{\n  path: "{self.path}",\n'
            "  onResult: (result) => console.log(result),\n  onError: (error) => console.error(error),\n});\n"
            f"connection.send({json.dumps(self.message, indent=2)});\n"
        )

    def curl(self) -> str:
        return "# cURL speaks no websocket: use the Python snippet.\n"


class _Call:
    def __init__(
        self, endpoint_id: str, path: str, arguments: Any, local_url: str | None, key_file: str | None, streaming: bool
    ):
        self.app, self.arguments, self.local_url, self.key_file = endpoint_id.strip("/"), arguments, local_url, key_file
        self.path = "" if path in ("", "/") else "/" + path.lstrip("/")
        self.streaming = streaming

    @property
    def url(self) -> str:
        if self.local_url:
            return self.local_url.rstrip("/") + self.path
        return fal_app_urls(*fal_hosts(), self.app)[0] + self.path

    # -- Python -------------------------------------------------------------------------------
    def python(self) -> str:
        if self.local_url:
            return self._python_http()
        args = py_literal(self.arguments, 4, len("arguments=,"))
        path = f'    path="{self.path}",\n' if self.path else ""
        if self.streaming:
            return (
                "import fal_client\n\n"
                f'for event in fal_client.stream(\n    "{self.app}",\n    arguments={args},\n{path}):\n'
                "    print(event)\n"
            )
        return (
            "import fal_client\n\n"
            f'result = fal_client.subscribe(\n    "{self.app}",\n    arguments={args},\n{path}'
            "    with_logs=True,\n)\nprint(result)\n"
        )

    def _python_http(self) -> str:
        stdlib = (["import json"] if self.streaming else []) + (["from pathlib import Path"] if self.key_file else [])
        head = "".join(f"{line}\n" for line in stdlib) + ("\n" if stdlib else "") + "import httpx\n\n"
        if self.key_file:
            head += f"key = Path({json.dumps(self.key_file)}).read_text().strip()\n"
        headers = '    headers={"Authorization": f"Key {key}"},\n' if self.key_file else ""
        args = py_literal(self.arguments, 4, len("json=,"))
        if self.streaming:
            return (
                f'{head}with httpx.stream(\n    "POST",\n    "{self.url}",\n    json={args},\n{headers}'
                "    timeout=None,\n) as response:\n    response.raise_for_status()\n"
                "    for line in response.iter_lines():\n"
                '        if line.startswith("data:"):\n            print(json.loads(line[5:]))\n'
            )
        return (
            f'{head}response = httpx.post(\n    "{self.url}",\n    json={args},\n{headers}    timeout=None,\n)\n'
            "response.raise_for_status()\nresult = response.json()\nprint(result)\n"
        )

    # -- JavaScript ---------------------------------------------------------------------------
    def javascript(self) -> str:
        body = _indent(json.dumps(self.arguments, indent=2), 2)
        if self.local_url:
            headers = '"Content-Type": "application/json"'
            preamble = ""
            if self.key_file:
                headers += ", Authorization: `Key ${key}`"
                preamble = (
                    'import { readFileSync } from "node:fs";\n\n'
                    f'const key = readFileSync({json.dumps(self.key_file)}, "utf8").trim();\n'
                )
            call = (
                f'{preamble}const response = await fetch("{self.url}", {{\n  method: "POST",\n'
                f"  headers: {{ {headers} }},\n  body: JSON.stringify({body}),\n}});\n"
            )
            if self.streaming:
                return (
                    call + "const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();\n"
                    "for (let chunk; !(chunk = await reader.read()).done; ) console.log(chunk.value);\n"
                )
            return call + "const result = await response.json();\nconsole.log(result);\n"
        app = self.app + self.path
        if self.streaming:  # @fal-ai/client adds /stream itself
            app = self.app + self.path.removesuffix("/" + STREAM_PATH)
            return (
                'import { fal } from "@fal-ai/client";\n\n'
                f'const stream = await fal.stream("{app}", {{\n  input: {body},\n}});\n'
                "for await (const event of stream) console.log(event);\n"
                "console.log(await stream.done());\n"
            )
        return (
            'import { fal } from "@fal-ai/client";\n\n'
            f'const result = await fal.subscribe("{app}", {{\n  input: {body},\n  logs: true,\n}});\n'
            "console.log(result.data);\n"
        )

    # -- cURL ---------------------------------------------------------------------------------
    def curl(self) -> str:
        lines = [f"curl {'-N ' if self.streaming else ''}-X POST {_shell_quote(self.url)}"]
        if self.local_url and self.key_file:
            lines.append(f'-H "Authorization: Key $(cat {_shell_quote(self.key_file)})"')
        elif not self.local_url:
            lines.append('-H "Authorization: Key $FAL_KEY"')
        lines.append("-H 'Content-Type: application/json'")
        lines.append("-d " + _shell_quote(json.dumps(self.arguments, indent=2)))
        return " \\\n  ".join(lines) + "\n"


def request_snippets(
    app_url: str, method: str, path: str, options: dict[str, Any], *, key_file: str | None, fal_key: bool = False
) -> dict[str, str]:
    """The three snippets for a plain HTTP request to an app (``EndpointClient.request``'s ``options``:
    ``params``, ``json``, ``data``, ``files``). Uploaded files are named by their file names; the key
    is read from ``key_file`` (the local gateway's) or from ``FAL_KEY`` (``fal_key``: an app on fal)."""
    url = join_url(app_url, path) + (f"?{options['params']}" if options.get("params") else "")
    files = [(field, name) for field, (name, _content, _kind) in options.get("files", [])]
    return {
        "Python": _request_python(url, method, options, files, key_file, fal_key),
        "JavaScript": _request_javascript(url, method, options, files, key_file, fal_key),
        "cURL": _request_curl(url, method, options, files, key_file, fal_key),
    }


def _request_python(
    url: str, method: str, options: dict[str, Any], files: list[tuple[str, str]], key_file: str | None, fal: bool
) -> str:
    imports = ["import os"] if fal else ["from pathlib import Path"] if key_file else []
    head = "".join(f"{line}\n" for line in imports) + ("\n" if imports else "") + "import httpx\n\n"
    if key_file:
        head += f"key = Path({json.dumps(key_file)}).read_text().strip()\n"
    args = [json.dumps(method), json.dumps(url)]
    if "json" in options:
        args.append("json=" + py_literal(options["json"], 4, len("json=,")))
    if options.get("data"):
        args.append("data=" + py_literal(options["data"], 4, len("data=,")))
    if files:
        args.append("files=[" + ", ".join(f"({json.dumps(f)}, open({json.dumps(n)}, 'rb'))" for f, n in files) + "]")
    if key_file:
        args.append('headers={"Authorization": f"Key {key}"}')
    elif fal:
        args.append('headers={"Authorization": f"Key {os.environ[\'FAL_KEY\']}"}')
    args.append("timeout=None")
    call = "response = httpx.request(\n" + "".join(f"    {a},\n" for a in args) + ")\n"
    return head + call + "print(response.status_code, response.headers.get('content-type'))\nprint(response.text)\n"


def _request_javascript(
    url: str, method: str, options: dict[str, Any], files: list[tuple[str, str]], key_file: str | None, fal: bool
) -> str:
    lines = []
    if key_file or files:
        lines.append('import { readFileSync } from "node:fs";\n')
    if key_file:
        lines.append(f'const key = readFileSync({json.dumps(key_file)}, "utf8").trim();')
    headers = []
    if key_file:
        headers.append("Authorization: `Key ${key}`")
    elif fal:
        headers.append("Authorization: `Key ${process.env.FAL_KEY}`")
    body = ""
    if "json" in options:
        headers.append('"Content-Type": "application/json"')
        body = f"  body: JSON.stringify({_indent(json.dumps(options['json'], indent=2), 2)}),\n"
    elif options.get("data") or files:
        lines.append("const form = new FormData();")
        lines += [f"form.append({json.dumps(k)}, {json.dumps(v)});" for k, v in (options.get("data") or {}).items()]
        lines += [
            f"form.append({json.dumps(f)}, new Blob([readFileSync({json.dumps(n)})]), {json.dumps(n)});"
            for f, n in files
        ]
        body = "  body: form,\n"
    shown = f"  headers: {{ {', '.join(headers)} }},\n" if headers else ""
    lines.append(f'const response = await fetch("{url}", {{\n  method: "{method}",\n{shown}{body}}});')
    lines.append("console.log(response.status, await response.text());")
    return "\n".join(lines) + "\n"


def _request_curl(
    url: str, method: str, options: dict[str, Any], files: list[tuple[str, str]], key_file: str | None, fal: bool
) -> str:
    lines = [f"curl -X {method} {_shell_quote(url)}"]
    if key_file:
        lines.append(f'-H "Authorization: Key $(cat {_shell_quote(key_file)})"')
    elif fal:
        lines.append('-H "Authorization: Key $FAL_KEY"')
    if "json" in options:
        lines.append("-H 'Content-Type: application/json'")
        lines.append("-d " + _shell_quote(json.dumps(options["json"], indent=2)))
    lines += [f"-F {_shell_quote(f'{k}={v}')}" for k, v in (options.get("data") or {}).items()]
    lines += [f"-F {_shell_quote(f'{f}=@{n}')}" for f, n in files]
    return " \\\n  ".join(lines) + "\n"


def py_literal(value: Any, indent: int = 0, lead: int = 0) -> str:
    """``value`` as Python source (``True``/``None``, not ``true``/``null``), wrapped like black:
    on one line when ``indent`` + ``lead`` (text before it on its line) + its length fits."""
    flat = _py_flat(value)
    if indent + lead + len(flat) <= _WIDTH or not isinstance(value, (dict, list)) or not value:
        return flat
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        items = [f"{pad}{_py_flat(k)}: {py_literal(v, indent + 4, len(_py_flat(k)) + 3)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + ",\n" + " " * indent + "}"
    items = [pad + py_literal(v, indent + 4, 1) for v in value]
    return "[\n" + ",\n".join(items) + ",\n" + " " * indent + "]"


def _py_flat(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid Python literal
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_py_flat(k)}: {_py_flat(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_py_flat(v) for v in value) + "]"
    return repr(value)


def _indent(text: str, by: int) -> str:
    return text.replace("\n", "\n" + " " * by)


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
