"""A model server as public repositories write one: the weights file beside the module, loaded when
it is imported (served by tests/servers/servers.ipynb with ``--cmd "uvicorn main:app ..."``)."""

from pathlib import Path

import joblib
from fastapi import FastAPI
from pydantic import BaseModel

weights = joblib.load(Path(__file__).parent / "weights.pkl")
app = FastAPI(title="scorer")


class Features(BaseModel):
    x: float


@app.post("/score")
def score(features: Features) -> dict:
    return {"score": float(weights[0] * features.x + weights[1])}
