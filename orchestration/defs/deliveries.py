"""Dagster definitions for the deliveries stage."""

import dagster as dg

defs = dg.Definitions()
