"""The one Dagster entry point: every stage's definitions merged with the shared resources."""

import dagster as dg

from orchestration.defs import STAGES
from orchestration.resources import shared_resources

defs = dg.Definitions.merge(
    *(stage.defs for stage in STAGES),
    dg.Definitions(resources=shared_resources(), executor=dg.in_process_executor),
)
