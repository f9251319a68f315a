"""The shared core every stage stands on.

Settings, lake layout and storage, leases, the run ledger, errors and the Spark session helpers.

Nothing here imports pyspark at import time except ``ingestion.core.spark``'s submodules, which
import it when they are called.
"""
