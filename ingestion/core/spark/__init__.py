"""Spark-side helpers (import pyspark lazily)."""
