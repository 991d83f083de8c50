"""Churn and expansion models, their explanations, anomalies and segments (no Dagster)."""
