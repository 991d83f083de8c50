"""Writes landing folders (events, snapshots, outcomes, manifest) and the ground-truth files."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from pathlib import Path

import numpy as np

from simulator import catalog as C
from simulator.activity import DAY_S

# Files this simulator owns inside a landing folder; only these are removed on a re-run.
_OWNED_PATTERNS = (
    "events-*.jsonl.gz",
    "accounts.csv",
    "users.csv",
    "outcomes.csv",
    "_manifest.json",
)

ACCOUNT_COLUMNS = (
    "account_id",
    "account_name",
    "domain",
    "plan",
    "seats",
    "arr",
    "contract_start_date",
    "renewal_date",
    "csm_name",
    "csm_email",
    "manager_name",
    "manager_email",
    "industry",
    "region",
    "tracking_consent",
)
USER_COLUMNS = (
    "user_id",
    "account_id",
    "email",
    "role",
    "created_at",
    "deactivated_at",
    "opted_out",
)
OUTCOME_COLUMNS = ("account_id", "outcome", "effective_date", "arr_delta")


def gzip_bytes(data: bytes, level: int) -> bytes:
    """Gzip with a zero mtime and no file name, so equal input gives equal bytes."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def csv_text(columns: tuple[str, ...], rows: list[tuple]) -> str:
    """CSV with newline line ends; values are plain (the simulator never emits commas or quotes)."""
    out = io.StringIO()
    out.write(",".join(columns) + "\n")
    for row in rows:
        out.write(",".join(row) + "\n")
    return out.getvalue()


def clear_folder(folder: Path) -> None:
    """Remove files an earlier run of the simulator left here (others' files are kept)."""
    if not folder.is_dir():
        return
    for pattern in _OWNED_PATTERNS:
        for path in folder.glob(pattern):
            path.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()


def write_folder(
    folder: Path,
    landing_date: dt.date,
    event_lines: list[str],
    events_per_file: int,
    compresslevel: int,
    empty_file: int,
    accounts_csv: str | None,
    users_csv: str | None,
    outcomes_csv: str,
) -> dict[str, int]:
    """Write one landing folder, the manifest last; returns file name -> byte size."""
    clear_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, int] = {}

    def put(name: str, data: bytes) -> None:
        (folder / name).write_bytes(data)
        files[name] = len(data)

    n_files = 0
    for lo in range(0, len(event_lines), events_per_file):
        chunk = "".join(event_lines[lo : lo + events_per_file]).encode()
        put(f"events-{n_files:03d}.jsonl.gz", gzip_bytes(chunk, compresslevel))
        n_files += 1
    if empty_file:
        # Both kinds of "nothing" exporters produce: a 0-byte file and a gzip of no lines.
        put(f"events-{n_files:03d}.jsonl.gz", b"" if empty_file == 1 else gzip_bytes(b"", 6))
    if accounts_csv is not None:
        put("accounts.csv", accounts_csv.encode())
    if users_csv is not None:
        put("users.csv", users_csv.encode())
    put("outcomes.csv", outcomes_csv.encode())
    manifest = {"landing_date": landing_date.isoformat(), "files": files}
    (folder / "_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return files


class GzipCsvStream:
    """A gzip CSV written row block by row block (bounded memory), deterministic bytes."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._gz = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6
        )
        self._gz.write((",".join(columns) + "\n").encode())

    def write(self, text: str) -> None:
        self._gz.write(text.encode())

    def close(self) -> None:
        self._gz.close()
        self._raw.close()


def accounts_csv(sim, t: int) -> str:
    """The CRM snapshot of day t: every customer; no renewal date without a contract."""
    acc, team = sim.acc, sim.team
    rows = []
    for i in np.flatnonzero((acc.join_day <= t) & (acc.churn_day > t)).tolist():
        c = int(acc.csm[i])
        mgr = int(team.csm_manager[c])
        rows.append(
            (
                acc.ids[i],
                acc.names[i],
                acc.domains[i],
                C.PLANS[acc.plan[i]],
                str(int(acc.seats[i])),
                f"{acc.arr[i]:.2f}",
                acc.contract_start[i].isoformat(),
                sim.date(int(acc.renewal_day[i])).isoformat() if acc.contract[i] else "",
                team.csm_name[c],
                team.csm_email[c],
                team.manager_name[mgr],
                team.manager_email[mgr],
                C.INDUSTRIES[acc.industry[i]],
                C.REGION_NAMES[acc.region[i]],
                "true" if acc.consent[i] else "false",
            )
        )
    return csv_text(ACCOUNT_COLUMNS, rows)


def users_csv(sim, t: int) -> str:
    """The users snapshot of day t: every user created by then in a listed account."""
    acc, users = sim.acc, sim.users
    n = users.n
    listed = (acc.join_day <= t) & (acc.churn_day > t)
    keep = np.flatnonzero(listed[users.acct[:n]] & (users.created_day[:n] <= t))
    start = np.datetime64(sim.cfg.start, "s")
    created = np.datetime_as_string(
        start + (users.created_day[keep] * DAY_S + users.created_sec[keep]).astype("timedelta64[s]")
    )
    gone = users.deact_day[keep] <= t
    deact = np.datetime_as_string(
        start
        + (np.where(gone, users.deact_day[keep], 0) * DAY_S + users.deact_sec[keep]).astype(
            "timedelta64[s]"
        )
    )
    ids, emails = users.ids, users.emails
    body = "".join(
        f"{ids[u]},{acc.ids[a]},{emails[u]},{C.ROLES[r]},{c}Z,{d + 'Z' if g else ''},"
        f"{'true' if o else 'false'}\n"
        for u, a, r, c, d, g, o in zip(
            keep.tolist(),
            users.acct[keep].tolist(),
            users.role[keep].tolist(),
            created.tolist(),
            deact.tolist(),
            gone.tolist(),
            users.opted_out[keep].tolist(),
            strict=True,
        )
    )
    return ",".join(USER_COLUMNS) + "\n" + body


def write_truth(sim) -> None:
    """The hidden ground truth: per account, per outcome, quiet accounts, champion departures."""
    from simulator.decisions import contract_kind

    acc = sim.acc
    assert sim.truth_dir is not None
    sim.truth_dir.mkdir(parents=True, exist_ok=True)
    last: dict[str, tuple] = {}
    for row in sim.truth_outcomes:
        last[row[0]] = row
    rows = []
    for i in range(acc.n):
        joined = sim.date(int(acc.join_day[i])) if acc.join_day[i] > 0 else acc.contract_start[i]
        churned = acc.status[i] == 2
        pending = acc.plan_kind[i] >= 0
        lo = last.get(acc.ids[i])
        left = acc.champion_left_dates[i]
        rows.append(
            (
                acc.ids[i],
                joined.isoformat(),
                C.PLANS[acc.initial_plan[i]],
                C.PLANS[acc.plan[i]],
                "churned" if churned else ("active" if acc.status[i] == 1 else "not_joined"),
                C.OUTCOMES[acc.plan_kind[i]] if pending else "",
                sim.date(int(acc.plan_day[i])).isoformat() if pending else "",
                acc.plan_reason[i] if pending else "",
                lo[1] if lo else "",
                lo[2] if lo else "",
                sim.date(int(acc.churn_day[i])).isoformat() if churned else "",
                lo[4] if churned and lo else "",
                left[-1].isoformat() if left else "",
                str(len(left)),
                f"{acc.mu[i]:.4f}",
                "true" if acc.consent[i] else "false",
                contract_kind(acc, i),
                str(int(acc.notice_days[i])) if acc.contract[i] else "",
                sim.date(int(acc.quiet_day[i])).isoformat() if acc.quiet[i] else "",
            )
        )
    cols = (
        "account_id",
        "joined_date",
        "plan_at_start",
        "plan_at_end",
        "final_status",
        "planned_outcome",
        "planned_outcome_date",
        "planned_reason",
        "last_outcome",
        "last_outcome_date",
        "churn_date",
        "churn_reason",
        "champion_left_date",
        "champion_left_count",
        "baseline_health",
        "tracking_consent",
        "contract",
        "notice_days",
        "quiet_since",
    )
    (sim.truth_dir / "accounts.csv").write_text(csv_text(cols, rows))
    cols = (
        "account_id",
        "outcome",
        "effective_date",
        "decided_date",
        "reason",
        "arr_delta",
        "at_renewal",
        "fading_since",
        "contract",
    )
    (sim.truth_dir / "outcomes.csv").write_text(csv_text(cols, sim.truth_outcomes))
    # product-led accounts that stopped using the portal without cancelling (no outcome row)
    (sim.truth_dir / "quiet_accounts.csv").write_text(
        csv_text(("account_id", "quiet_since", "reason"), sim.quiet_accounts)
    )
    champ = [(acc.ids[i], d.isoformat()) for i in range(acc.n) for d in acc.champion_left_dates[i]]
    (sim.truth_dir / "champion_departures.csv").write_text(
        csv_text(("account_id", "left_date"), champ)
    )
