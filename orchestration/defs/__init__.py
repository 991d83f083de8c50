"""One module per pipeline stage; each exposes `defs`."""

from orchestration.defs import alerts, analytics, deliveries, inbox, ingest, kpis, marts, ml

STAGES = [ingest, marts, ml, alerts, deliveries, kpis, analytics, inbox]
