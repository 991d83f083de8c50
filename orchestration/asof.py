"""How a run decides its as-of date: explicit config, else the latest fully landed day."""

from __future__ import annotations

import datetime as dt

import dagster as dg


class AsOfConfig(dg.Config):
    """Run config shared by the downstream assets. Empty `as_of_date` = latest landed day."""

    as_of_date: str = ""


def resolve_as_of(con, config: AsOfConfig | None = None) -> dt.date:
    """The as-of date for this run; fails with a clear message when nothing has landed yet."""
    if config is not None and config.as_of_date:
        return dt.date.fromisoformat(config.as_of_date)
    row = con.execute(
        "select max(landing_date) from raw.landed_partitions where source in ('events', 'history')"
    ).fetchone()
    if row is None or row[0] is None:
        raise dg.Failure(
            "No landed event partitions yet: run the ingestion assets first "
            "(or give `as_of_date` in the run config)."
        )
    return row[0]
