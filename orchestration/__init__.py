"""Dagster wiring for Engagement Alerts: the only package that imports dagster."""
