"""Silver transform for ``customers``: tidy CRM free text before the contract's checks run.

E-mail addresses are compared case-insensitively everywhere, so they are stored trimmed and in
lower case (``" Ann@Example.COM "`` -> ``"ann@example.com"``); names are trimmed with inner runs
of whitespace collapsed; country codes are trimmed and upper-cased. Empty results become null.
"""

from __future__ import annotations

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame


def _blank_to_null(c: Column) -> Column:
    return F.when(c == F.lit(""), F.lit(None)).otherwise(c)


def silver(df: DataFrame) -> DataFrame:
    """Normalise ``email``, ``name`` and ``country``; every other column is kept as is."""
    return df.withColumns(
        {
            "email": _blank_to_null(F.lower(F.trim(F.col("email")))),
            "name": _blank_to_null(F.regexp_replace(F.trim(F.col("name")), r"\s+", " ")),
            "country": _blank_to_null(F.upper(F.trim(F.col("country")))),
        }
    )
