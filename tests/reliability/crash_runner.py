"""Runs one pipeline stage in its own process; with --kill-at N it SIGKILLs itself mid-stage.

The connection handed to the stage counts statements; just before statement N runs the process
kills itself with SIGKILL (no cleanup, no rollback, no atexit), which is what a power cut or an
OOM kill does to a run. Without --kill-at it prints the number of statements the stage ran.
"""

import argparse
import datetime as dt
import json
import os
import random
import signal
from pathlib import Path

import duckdb


class KillingConnection:
    """A duckdb connection that dies (SIGKILL) before its Nth statement."""

    def __init__(self, con, kill_at: int | None):
        self._con = con
        self._kill_at = kill_at
        self.statements = 0

    def _count(self):
        self.statements += 1
        if self._kill_at is not None and self.statements >= self._kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def execute(self, *args, **kwargs):
        self._count()
        return self._con.execute(*args, **kwargs)

    def executemany(self, *args, **kwargs):
        self._count()
        return self._con.executemany(*args, **kwargs)

    def sql(self, *args, **kwargs):
        self._count()
        return self._con.sql(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def run_ingest(con, args):
    from ingest.loader import load_landing_day

    load_landing_day(con, Path(args.landing), dt.date.fromisoformat(args.day))


def run_alerts(con, args):
    from alerts.engine import evaluate
    from alerts.rules import columns_from_connection, load_routing, load_rules

    config = Path(args.config)
    templates = config / "templates" / "recommendations"
    rules = load_rules(config / "rules.yml", columns_from_connection(con), templates)
    evaluate(con, rules, load_routing(config / "routing.yml"), dt.date.fromisoformat(args.day),
             templates)  # fmt: skip


def run_outbox(con, args):
    from notifications.mail import SmtpConfig, SmtpSender
    from notifications.outbox import deliver_due

    smtp = SmtpSender(SmtpConfig(host="127.0.0.1", port=args.smtp_port, timeout_seconds=5))
    now = dt.datetime.fromisoformat(args.now)
    deliver_due(con, {"email": smtp}, now, rng=random.Random(1), channels=["email"])


def run_score(con, args):
    """Score one day with a small model trained the same way every time (fixed seeds)."""
    import pandas as pd

    from ml.config import churn_config
    from ml.registry import ChampionModel
    from ml.score import score_frame, write_scores
    from ml.train import train_model
    from tests.ml.synthetic import feature_grid

    grid = feature_grid(horizon_days=28)
    result = train_model(grid, churn_config(horizon_days=28, num_boost_round=40))
    champion = ChampionModel(result.model, "churn_model", "1", "run-crash-test")
    day = dt.date.fromisoformat(args.day)
    frame = grid.assign(as_of_date=pd.to_datetime(grid["as_of_date"]).dt.date)
    scores = score_frame(frame, champion, "churn", day, scored_at=dt.datetime(2025, 3, 31, 6))
    write_scores(con, scores)


STAGES = {"ingest": run_ingest, "alerts": run_alerts, "outbox": run_outbox, "score": run_score}

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("stage", choices=sorted(STAGES))
    p.add_argument("database")
    p.add_argument("--kill-at", type=int)
    p.add_argument("--landing")
    p.add_argument("--day")
    p.add_argument("--config")
    p.add_argument("--smtp-port", type=int)
    p.add_argument("--now")
    args = p.parse_args()
    raw = duckdb.connect(args.database)
    con = KillingConnection(raw, args.kill_at)
    STAGES[args.stage](con, args)
    raw.close()
    print(json.dumps({"statements": con.statements}))
