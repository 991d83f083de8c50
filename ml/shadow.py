"""Shadow scoring: how many alerts a candidate model would raise on today's accounts, per CSM,
next to the champion's, before it is allowed to replace it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.config import ScoreConfig, TrainConfig
from ml.model import ScoringModel

BAND_NAMES = ("low", "medium", "high", "very_high")
UNASSIGNED = "(no CSM)"


def alerting_threshold(config: TrainConfig, score_config: ScoreConfig | None = None) -> float:
    """The probability from which an account is in the first of `config.shadow_bands`."""
    bands = (score_config or ScoreConfig()).band_thresholds
    first = min(BAND_NAMES.index(b) for b in config.shadow_bands)
    return 0.0 if first == 0 else float(bands[first - 1])


@dataclass
class ShadowReport:
    as_of_date: str
    accounts: int
    csms: int
    threshold: float
    candidate_alerts: int
    champion_alerts: int | None
    # one row per CSM: csm, accounts, candidate, champion
    per_csm: pd.DataFrame

    def metrics(self) -> dict[str, float]:
        out = {
            "shadow_accounts": float(self.accounts),
            "shadow_csms": float(self.csms),
            "shadow_candidate_alerts": float(self.candidate_alerts),
            "shadow_candidate_alerts_per_csm_week": self.candidate_alerts / max(self.csms, 1),
            "shadow_candidate_max_csm_alerts": float(self.per_csm["candidate"].max())
            if len(self.per_csm)
            else 0.0,
        }
        if self.champion_alerts is not None:
            out["shadow_champion_alerts"] = float(self.champion_alerts)
            out["shadow_champion_alerts_per_csm_week"] = self.champion_alerts / max(self.csms, 1)
        return out

    def table(self, top: int = 10) -> str:
        """Markdown: the CSMs the candidate would alert most."""
        lines = ["| CSM | accounts | candidate alerts | champion alerts |", "|---|---|---|---|"]
        for row in self.per_csm.head(top).to_dict("records"):
            champ = "—" if pd.isna(row["champion"]) else f"{row['champion']:.0f}"
            lines.append(f"| {row['csm']} | {row['accounts']} | {row['candidate']:.0f} | {champ} |")
        return "\n".join(lines)


def shadow_score(
    today: pd.DataFrame,
    owners: pd.DataFrame,
    candidate: ScoringModel,
    champion: ScoringModel | None,
    config: TrainConfig,
    score_config: ScoreConfig | None = None,
) -> ShadowReport:
    """Score today's scorable accounts (`today`: their `marts.ml_features` rows) with the
    candidate and the champion; an account counts as alerted when its probability reaches the
    alerting bands. A new alert stays open for the episode, so the accounts in those bands on
    one day are the alerts a CSM would get in the week after the switch.

    `owners`: account_id, csm_email (marts.dim_accounts); accounts without one count under
    "(no CSM)". A champion that cannot score today's features is left out (None).
    """
    threshold = alerting_threshold(config, score_config)
    owner = today[["account_id"]].merge(owners, on="account_id", how="left")
    csm = owner["csm_email"].fillna(UNASSIGNED).to_numpy()
    cand = candidate.predict_proba(today) >= threshold if len(today) else np.zeros(0, bool)
    champ = None
    if champion is not None and len(today):
        try:
            champ = champion.predict_proba(today) >= threshold
        except ValueError:
            champ = None
    per = pd.DataFrame({"csm": csm, "candidate": cand.astype(int)})
    per["champion"] = champ.astype(int) if champ is not None else np.nan
    per["accounts"] = 1
    per_csm = (
        per.groupby("csm", as_index=False)
        .agg(
            accounts=("accounts", "sum"),
            candidate=("candidate", "sum"),
            champion=("champion", "sum" if champ is not None else "first"),
        )
        .sort_values(["candidate", "csm"], ascending=[False, True])
        .reset_index(drop=True)
    )
    as_of = pd.to_datetime(today["as_of_date"]).max() if len(today) else pd.NaT
    return ShadowReport(
        as_of_date="" if pd.isna(as_of) else as_of.date().isoformat(),
        accounts=len(today),
        csms=int(per_csm["csm"].nunique()),
        threshold=threshold,
        candidate_alerts=int(cand.sum()),
        champion_alerts=None if champ is None else int(champ.sum()),
        per_csm=per_csm,
    )
