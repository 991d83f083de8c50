"""Loads each landing day of a folder separately (as Dagster partitions do) and prints JSON."""

import json
import sys
from pathlib import Path

import duckdb

from ingest.common import IngestError
from ingest.loader import find_landing_days, load_landing_day

landing, db = Path(sys.argv[1]), sys.argv[2]
con = duckdb.connect(db)
out = {}
for day in sorted(find_landing_days(landing)):
    try:
        stats = load_landing_day(con, landing, day)
        out[str(day)] = {"ok": True, "quarantined": stats.total("rows_quarantined")}
    except IngestError as exc:
        out[str(day)] = {"ok": False, "error": str(exc)[:500]}
rows = con.execute("select landing_date, count(*) from raw.events group by all").fetchall()
out["events"] = {str(d): n for d, n in rows}
q = con.execute("select reason, count(*) from raw.quarantine group by all").fetchall()
out["reasons"] = dict(q)
print(json.dumps(out, default=str))
