"""Per-dataset silver transforms: ``<dataset>.py`` exposing ``silver(df) -> df``.

See :mod:`transforms.silver.hooks` for the contract: pure, row-preserving, keeps the columns it
does not own and the contract's types; runs after casting, before validation.
"""
