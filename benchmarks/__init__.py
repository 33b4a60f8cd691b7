"""The saga benchmark: sagas per second, latency and cost per saga, beside this machine's limits.

Run from the repository root: `.venv/bin/python -m benchmarks.run --help` (or `make bench`).
"""
