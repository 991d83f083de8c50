"""Dagster definitions for the marts stage."""

import dagster as dg

defs = dg.Definitions()
