"""Dagster definitions for the ml stage."""

import dagster as dg

defs = dg.Definitions()
