"""Entry points: Spark jobs (``python -m jobs.<name>`` / spark-submit) and the CLI. Thin adapters."""
