"""bronze -> silver: typed, deduplicated, validated; rejected rows to quarantine with reasons.

Entry points (Spark side):

* :func:`curate` - one curate run for a dataset (``headwater run curate``, ``python -m jobs.curate``).
* :func:`replay` - re-validate quarantined rows and move the ones that now pass into silver.
* :func:`compile_plan` / :func:`register_builder` - the contract's checks as Spark expressions.
"""

from transforms.silver.curate import curate
from transforms.silver.errors import CurateError
from transforms.silver.expectations import compile_plan, register_builder
from transforms.silver.replay import replay

__all__ = ["CurateError", "compile_plan", "curate", "register_builder", "replay"]
