"""In-kernel time to build the input form of a 50-field schema: fal-notebook's Playground form vs
ipyautoui's ``AutoUi`` on the same model, side by side (a ratio; absolute times vary by machine).

Both build real ipywidgets in one process (without a front end attached, as in a kernel before the
widgets are displayed). fal-notebook's side is what the Playground does with an app's schema:
parse the OpenAPI document (``parse_openapi``) and build the form (``ObjectControl``); AutoUi gets
the model's JSON schema.

    PYTHONPATH=. python benchmarks/bench_playground_form.py [--repeat 15]

ipyautoui is not a dependency of fal-notebook: install it (and its dependencies) where this
script can import it, e.g. ``pip install --target /tmp/bench-pkgs ipyautoui`` and prepend that folder
to PYTHONPATH.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Literal

import fal
from pydantic import BaseModel, Field, create_model

from fal_notebook.schema import parse_openapi
from fal_notebook.widgets.fields import ObjectControl


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


def median_seconds(build, repeat: int) -> float:
    build()  # warm up: imports, pydantic caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        build()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    try:
        from ipyautoui import AutoUi
    except ImportError:
        print("ipyautoui is not importable: see this script's docstring.", file=sys.stderr)
        return 2
    document, schema = BigApp(_allow_init=True).openapi(), BigInput.model_json_schema()

    def ours():
        endpoint = parse_openapi(document).endpoint("/")
        form = ObjectControl(endpoint.form, lambda *a: "")
        assert len(form.rows) == 50

    def theirs():
        ui = AutoUi(schema)
        assert len(ui.value) >= 49

    fal_notebook_s = median_seconds(ours, args.repeat)
    ipyautoui_s = median_seconds(theirs, args.repeat)
    print(f"form build, 50 fields, median of {args.repeat}:")
    print(f"  fal-notebook Playground form  {fal_notebook_s * 1000:8.1f} ms")
    print(f"  ipyautoui AutoUi              {ipyautoui_s * 1000:8.1f} ms")
    print(f"  ratio AutoUi / fal-notebook   {ipyautoui_s / fal_notebook_s:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
