"""Declared access per zone and per dataset folder, applied as ADLS Gen2 ACLs.

:func:`plan_access` turns ``settings.access`` into an ordered :class:`AccessPlan` (validated:
object ids, zones, datasets, the 32-entry limit); :func:`apply_plan` applies it through
``azure-storage-file-datalake`` (imported only there, when called), resumable from a state file.
``headwater lake apply-access`` is the command.
"""

from ingestion.access.acl import AclEntry
from ingestion.access.apply import ApplyResult, Failure, StepResult, apply_plan, make_service_client
from ingestion.access.plan import (
    AccessPlan,
    AccessPlanError,
    DatasetFolders,
    Step,
    dataset_folders,
    landing_folder,
    plan_access,
)

__all__ = [
    "AccessPlan",
    "AccessPlanError",
    "AclEntry",
    "ApplyResult",
    "DatasetFolders",
    "Failure",
    "Step",
    "StepResult",
    "apply_plan",
    "dataset_folders",
    "landing_folder",
    "make_service_client",
    "plan_access",
]
