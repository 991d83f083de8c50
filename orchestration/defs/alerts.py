"""Dagster definitions for the alerts stage."""

import dagster as dg

defs = dg.Definitions()
