"""Simulated CSM behaviour for the demo: work some delivered alerts, and sometimes save an account.

The simulator writes the whole export ahead of time, so a CSM's effect on the customer can only be
applied to days that have not landed yet: a save rewrites the account's next planned churn in the
not-yet-landed `outcomes.csv` into a renewal (docs/kpis.md lists exactly what this does not model).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from alerts.lifecycle import TransitionError, transition


@dataclass(frozen=True)
class CsmBehaviour:
    """How the simulated CSMs treat the alerts they receive (never the held-out ones)."""

    seed: int = 7
    engaged_csm_share: float = 0.7  # the rest never touch their alerts (a fatigue baseline)
    ack_share: float = 0.85  # of an engaged CSM's alerts, how many get acknowledged at all
    ack_mean_hours: float = 20.0  # exponential delay after the alert is raised
    resolve_after_days: tuple[int, int] = (1, 6)  # after acknowledging
    not_useful_share: float = 0.25  # resolutions with feedback not_useful
    save_share: float = 0.35  # acted-on risk alerts whose planned churn is averted
    save_horizon_days: int = 90  # only a churn planned this soon can be averted
    risk_types: tuple[str, ...] = field(
        default=("churn_risk", "engagement_drop", "champion_quiet", "adoption_gap", "renewal_risk")
    )


def _rng(*parts: object) -> random.Random:
    # One generator per decision: the same alert gets the same fate on every run and day.
    return random.Random(int(hashlib.md5("|".join(map(str, parts)).encode()).hexdigest()[:12], 16))


def _engaged(email: str | None, b: CsmBehaviour) -> bool:
    return bool(email) and _rng(b.seed, "csm", email).random() < b.engaged_csm_share


def act_on_alerts(
    con,
    as_of: dt.date,
    behaviour: CsmBehaviour | None = None,
    export_dir: Path | None = None,
) -> dict[str, int]:
    """Acknowledge / resolve (with feedback) the delivered alerts whose simulated timing falls on
    or before the end of `as_of`, through `alerts.transition`; with `export_dir`, saves rewrite
    future churns in the export. Idempotent: re-running a day changes nothing.
    """
    b = behaviour or CsmBehaviour()
    end_of_day = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    rows = con.execute(
        """
        select alert_id, alert_type, account_id, owner_email, status, first_raised_on
        from alerts.alerts
        where status in ('open', 'acknowledged') and account_id != '*'
          and not coalesce(is_holdout, false) and first_raised_on <= ?
        order by alert_id
        """,
        [as_of],
    ).fetchall()
    counts = {"acknowledged": 0, "resolved": 0, "saves": 0}
    for alert_id, alert_type, account_id, owner, status, raised_on in rows:
        if not _engaged(owner, b):
            continue
        r = _rng(b.seed, "alert", alert_id)
        raised_at = dt.datetime.combine(raised_on + dt.timedelta(days=1), dt.time())
        if r.random() >= b.ack_share:
            continue
        ack_at = raised_at + dt.timedelta(hours=r.expovariate(1 / b.ack_mean_hours))
        resolve_at = ack_at + dt.timedelta(days=r.uniform(*b.resolve_after_days))
        not_useful = r.random() < b.not_useful_share
        saved = alert_type in b.risk_types and not not_useful and r.random() < b.save_share
        try:
            if status == "open" and ack_at <= end_of_day:
                transition(con, alert_id, "acknowledged", owner, "simulated CSM", ack_at)
                counts["acknowledged"] += 1
            if ack_at <= end_of_day and resolve_at <= end_of_day:
                feedback = "not_useful" if not_useful else ("saved" if saved else "useful")
                reason = {"not_useful": "not useful", "saved": "account saved"}.get(
                    feedback, "followed up"
                )
                out = transition(
                    con, alert_id, "resolved", owner, reason, resolve_at, feedback=feedback
                )
                counts["resolved"] += int(out["changed"])
                if saved and export_dir is not None:
                    counts["saves"] += avert_next_churn(
                        export_dir, account_id, as_of, b.save_horizon_days
                    )
        except TransitionError:
            continue  # closed by the engine meanwhile: nothing left to do
    return counts


def avert_next_churn(
    export_dir: Path, account_id: str, after: dt.date, within_days: int = 90
) -> int:
    """Rewrite the account's next churn within `within_days` in a folder that has not landed
    (later than `after`) into a renewal with no ARR change, and fix that folder's manifest size.
    Returns 1 if one changed.
    """
    for folder in sorted(p for p in Path(export_dir).iterdir() if p.is_dir()):
        try:
            day = dt.date.fromisoformat(folder.name)
        except ValueError:
            continue
        path = folder / "outcomes.csv"
        if day <= after or day > after + dt.timedelta(days=within_days) or not path.exists():
            continue
        lines = list(csv.reader(io.StringIO(path.read_text())))
        hit = [i for i, r in enumerate(lines[1:], 1) if r[:2] == [account_id, "churned"]]
        if not hit:
            continue
        lines[hit[0]][1], lines[hit[0]][3] = "renewed", "0.00"
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(lines)
        path.write_text(buf.getvalue())
        manifest = folder / "_manifest.json"
        if manifest.exists():
            doc = json.loads(manifest.read_text())
            doc.get("files", {})["outcomes.csv"] = path.stat().st_size
            manifest.write_text(json.dumps(doc, indent=2) + "\n")
        return 1
    return 0
