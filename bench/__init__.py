"""The benchmark harness: `python -m bench` (bench/run.py) and the reference implementations."""
