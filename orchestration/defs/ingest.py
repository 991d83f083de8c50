"""Dagster definitions for the ingest stage."""

import dagster as dg

defs = dg.Definitions()
