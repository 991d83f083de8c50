"""What sensors share: they read the published work list and request runs, nothing more.

A sensor never opens the warehouse (even a read-only connection would make a run's next write
fail) and never writes: every change goes through a run, and runs go through the queue one at
a time. Steps that change what is owed publish the work list with `publish_state`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import dagster as dg
import duckdb

from orchestration.resources import PathsResource
from warehouse.ops_state import due_work, ops_state_path, publish_ops_state, run_key
from warehouse.publish import PublishResult

_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def publish_state(con, paths: PathsResource, source: str) -> PublishResult:
    """Publish the work list from the step's own connection (`source` names the step)."""
    return publish_ops_state(con, ops_state_path(paths.data), source)


def read_due(paths: PathsResource, now: dt.datetime) -> dict[str, list[str]] | None:
    """Work items due at `now` by kind, or None before the first publish."""
    path = ops_state_path(paths.data)
    if not path.is_file():
        return None
    con = duckdb.connect(str(path), read_only=True, config={"enable_external_access": False})
    try:
        return due_work(con, now)
    finally:
        con.close()


def request_when_due(
    context: dg.SensorEvaluationContext,
    paths: PathsResource,
    kinds: Iterable[str],
    job_name: str,
    now: dt.datetime | None = None,
    every: dt.timedelta = dt.timedelta(hours=1),
    run_config: dict | None = None,
) -> dg.RunRequest | dg.SkipReason:
    """A run of `job_name` when items of `kinds` are due and no run of it is queued or running.

    The run key names the set of due items and the period (`every`), so one set asks for one
    run per period however often the sensor ticks.
    """
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    kinds = list(kinds)
    due = read_due(paths, now)
    if due is None:
        return dg.SkipReason("No work list published yet (the first run publishes it).")
    items = [f"{kind}:{item}" for kind in kinds for item in due.get(kind, [])]
    if not items:
        return dg.SkipReason(f"Nothing due ({', '.join(kinds)}).")
    active = context.instance.get_run_ids(
        dg.RunsFilter(job_name=job_name, statuses=_ACTIVE), limit=1
    )
    if active:
        return dg.SkipReason(
            f"{len(items)} item(s) due; {job_name} run {active[0][:8]} is already queued or "
            "running."
        )
    counts = ", ".join(f"{len(due[k])} {k}" for k in kinds if due.get(k))
    return dg.RunRequest(
        run_key=run_key("+".join(kinds), items, now, every),
        job_name=job_name,
        run_config=run_config or {},
        tags={"ea/due": counts},
    )
