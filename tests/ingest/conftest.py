"""Helpers that write small hand-made landing folders exactly as the contract describes."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
from pathlib import Path

import duckdb
import pytest

ACCOUNT_COLS = [
    "account_id", "account_name", "domain", "plan", "seats", "arr", "contract_start_date",
    "renewal_date", "csm_name", "csm_email", "manager_name", "manager_email", "industry", "region",
    "tracking_consent",
]  # fmt: skip
USER_COLS = ["user_id", "account_id", "email", "role", "created_at", "deactivated_at", "opted_out"]
OUTCOME_COLS = ["account_id", "outcome", "effective_date", "arr_delta"]


def account(account_id: str, consent: str = "true", **over) -> dict:
    row = {
        "account_id": account_id, "account_name": f"Acme {account_id}", "domain": "acme.test",
        "plan": "growth", "seats": "10", "arr": "12000.50", "contract_start_date": "2024-01-01",
        "renewal_date": "2026-01-01", "csm_name": "Cas", "csm_email": "cas@example.test",
        "manager_name": "Mo", "manager_email": "mo@example.test", "industry": "legal",
        "region": "emea", "tracking_consent": consent,
    }  # fmt: skip
    row.update(over)
    return row


def user(user_id: str, account_id: str, opted_out: str = "false", **over) -> dict:
    row = {
        "user_id": user_id, "account_id": account_id, "email": f"{user_id}@acme.test",
        "role": "power", "created_at": "2024-01-02T00:00:00Z", "deactivated_at": "",
        "opted_out": opted_out,
    }  # fmt: skip
    row.update(over)
    return row


def event(mid: str, user_id: str = "u1", account_id: str = "a1", name: str = "Document Viewed",
          ts: str = "2025-03-04T09:00:00Z", **props) -> dict:  # fmt: skip
    return {
        "type": "track", "messageId": mid, "userId": user_id, "groupId": account_id,
        "event": name, "timestamp": ts,
        "properties": {"document_id": "d1", "session_id": "s1", "feature": None,
                       "duration_seconds": None, **props},
    }  # fmt: skip


def _write_csv(path: Path, cols: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def write_day(
    landing: Path,
    day: str,
    events: list | None = None,
    accounts: list[dict] | None = None,
    users: list[dict] | None = None,
    outcomes: list[dict] | None = None,
    extra_event_files: dict[str, bytes] | None = None,
) -> Path:
    """Write one landing folder; events items are dicts (JSON) or raw strings (dirt)."""
    folder = landing / day
    folder.mkdir(parents=True, exist_ok=True)
    if events is not None:
        text = "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events)
        (folder / "events-000.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    for name, data in (extra_event_files or {}).items():
        (folder / name).write_bytes(data)
    if accounts is not None:
        _write_csv(folder / "accounts.csv", ACCOUNT_COLS, accounts)
    if users is not None:
        _write_csv(folder / "users.csv", USER_COLS, users)
    _write_csv(folder / "outcomes.csv", OUTCOME_COLS, outcomes or [])
    files = {p.name: p.stat().st_size for p in folder.iterdir() if p.name != "_manifest.json"}
    (folder / "_manifest.json").write_text(json.dumps({"landing_date": day, "files": files}))
    return folder


@pytest.fixture()
def landing(tmp_path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


@pytest.fixture()
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield c
    c.close()


def d(s: str) -> dt.date:
    return dt.date.fromisoformat(s)
