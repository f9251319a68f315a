"""headwater's engine: settings, lake storage, dataset contracts, event handling, landing -> bronze.

Importing this package (and ``ingestion.events``, ``ingestion.storage``, ``ingestion.contracts``)
never imports pyspark; the Spark parts live in ``ingestion.spark`` and ``ingestion.bronze``.
"""

__version__ = "0.1.0"
