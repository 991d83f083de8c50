"""Ingestion: landed files (events, CRM snapshots, outcomes) into the DuckDB `raw` schema."""

from ingest.byo import ByoMapping, load_byo_file
from ingest.common import IngestError, SourceStats, transaction
from ingest.events import load_events, load_events_days
from ingest.loader import (
    LoadStats,
    check_manifest,
    find_landing_days,
    load_landing_day,
    load_landing_days,
    manifest_hash,
)
from ingest.schema import CANONICAL_EVENTS, REASONS, ensure_raw_schema
from ingest.snapshots import load_accounts, load_outcomes, load_users

__all__ = [
    "ByoMapping",
    "CANONICAL_EVENTS",
    "REASONS",
    "IngestError",
    "LoadStats",
    "SourceStats",
    "check_manifest",
    "ensure_raw_schema",
    "find_landing_days",
    "load_accounts",
    "load_byo_file",
    "load_events",
    "load_events_days",
    "load_landing_day",
    "load_landing_days",
    "load_outcomes",
    "load_users",
    "manifest_hash",
    "transaction",
]
