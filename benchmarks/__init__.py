"""fal-notebook's benchmark suite: every figure a ratio against a baseline run beside it.

.venv/bin/python -m benchmarks [--smoke] [--only NAME ...]
"""
