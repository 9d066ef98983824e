"""Reproducible performance harness: ``.venv/bin/python benchmarks/run.py`` (see README.md)."""
