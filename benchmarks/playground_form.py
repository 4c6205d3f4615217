"""In-kernel time to build the input form of a 50-field schema: fal-notebook's Playground form vs
ipyautoui's ``AutoUi`` on the same model, side by side (a ratio; absolute times vary by machine).

Both build real ipywidgets in one process (without a front end attached, as in a kernel before the
widgets are displayed). fal-notebook's side is what the Playground does with an app's schema:
parse the OpenAPI document (``parse_openapi``) and build the form (``ObjectControl``); AutoUi gets
the model's JSON schema.

ipyautoui is not a dependency of fal-notebook (its pins would move the project's): the suite
installs it into a folder of its own (``pip install --target``) and imports it from there.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import fal
from pydantic import BaseModel, Field, create_model

from fal_notebook.schema import parse_openapi
from fal_notebook.widgets.fields import ObjectControl

from .harness import Row, Sizes, interleaved, median


class Point(BaseModel):
    x: float = Field(0.0, ge=-1, le=1)
    y: float = Field(0.0, ge=-1, le=1)


def big_model() -> type[BaseModel]:
    """50 fields, ten of each kind: text, bounded integer, bounded number, boolean, choice; a few
    of them optional, lists or nested models, as real app inputs are."""
    fields: dict = {}
    for i in range(50):
        kind = i % 5
        if kind == 0:
            fields[f"text_{i}"] = (str, Field("hello", description=f"Text field {i}."))
        elif kind == 1:
            fields[f"count_{i}"] = (int, Field(5, ge=0, le=100, description="A bounded integer."))
        elif kind == 2:
            fields[f"ratio_{i}"] = (float, Field(0.5, ge=0, le=1))
        elif kind == 3:
            fields[f"flag_{i}"] = (bool, False)
        else:
            fields[f"choice_{i}"] = (Literal["a", "b", "c"], "a")
    fields["text_0"] = (str, Field(..., description="A required prompt."))
    fields["count_1"] = (int | None, None)
    fields["text_5"] = (list[str], [])
    fields["ratio_7"] = (Point, Point())
    return create_model("BigInput", **fields)


BigInput = big_model()


class BigApp(fal.App):
    @fal.endpoint("/")
    def run(self, input: BigInput) -> dict:  # type: ignore[valid-type]
        raise NotImplementedError


#: Where the suite installs ipyautoui and what it needs beyond the project's environment.
PACKAGES = Path(__file__).resolve().parent.parent / ".ci" / "cache" / "bench-packages"


def import_autoui():
    """ipyautoui's AutoUi, installed into PACKAGES first if needed; that folder comes last on the
    path, so the project's own packages keep their versions."""
    if str(PACKAGES) not in sys.path:
        sys.path.append(str(PACKAGES))
    try:
        from ipyautoui import AutoUi
    except ImportError:
        print(f"[benchmarks] installing ipyautoui into {PACKAGES} ...", file=sys.stderr, flush=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(PACKAGES), "ipyautoui"]
        subprocess.run(pip, check=True, stdout=subprocess.DEVNULL)
        importlib.invalidate_caches()
        from ipyautoui import AutoUi
    return AutoUi


def rows(sizes: Sizes) -> list[Row]:
    AutoUi = import_autoui()
    document, schema = BigApp(_allow_init=True).openapi(), BigInput.model_json_schema()

    def ours() -> list[float]:
        started = time.perf_counter()
        form = ObjectControl(parse_openapi(document).endpoint("/").form, lambda *a: "")
        took = time.perf_counter() - started
        assert len(form.rows) == 50
        return [took]

    def theirs() -> list[float]:
        started = time.perf_counter()
        ui = AutoUi(schema)
        took = time.perf_counter() - started
        assert len(ui.value) >= 49
        return [took]

    ours(), theirs()  # warm up: imports, pydantic caches
    got = interleaved({"ours": ours, "theirs": theirs}, sizes.form_repeat)
    a, b = median(got["ours"]), median(got["theirs"])
    return [
        Row(
            "Playground form of a 50-field schema vs ipyautoui's AutoUi on the same schema, in-kernel build",
            f"{a * 1000:.1f} ms",
            f"{b * 1000:.1f} ms",
            a / b,
            "≤ 0.5×",
            a / b <= 0.5,
        )
    ]
