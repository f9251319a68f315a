"""Dataset contracts: one module per dataset, each with a module-level ``DATASET``.

Keep these modules free of top-level pyspark imports: the Function App routes paths with them.
Build the pandera model inside ``columns()``, and do not use
``from __future__ import annotations`` in these files: pandera reads the annotations at run time.
"""
