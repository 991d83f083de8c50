"""The day-by-day simulation: the state carried from day to day and the loop over the days.

Each day: who is a customer and uses the portal (simulator.population), what customers decide
(simulator.decisions), the day's activity (simulator.activity), the dirt of the export
(simulator.dirt), and the landing folder (simulator.writer, on a second thread).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from simulator import catalog as C
from simulator import decisions, population
from simulator.activity import day_events, sigmoid
from simulator.config import DIRT_KINDS, SimConfig, SimSummary
from simulator.dirt import event_lines, plan_delayed_days
from simulator.population import Accounts, Users, make_team
from simulator.writer import (
    OUTCOME_COLUMNS,
    GzipCsvStream,
    accounts_csv,
    clear_folder,
    csv_text,
    users_csv,
    write_folder,
    write_truth,
)


class Simulation:
    """State carried from day to day; `run` writes everything and returns the summary."""

    def __init__(self, cfg: SimConfig, out_dir: Path, truth_dir: Path | None) -> None:
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.truth_dir = Path(truth_dir) if truth_dir is not None else None
        self.T = cfg.days
        rng = np.random.default_rng([cfg.seed, 0])
        expected_new = cfg.accounts * cfg.new_account_rate * self.T / 365.0
        n_new = int(rng.poisson(expected_new)) if expected_new > 0 else 0
        if cfg.accounts + n_new > 90_000:
            # Ids a_90000 and up are reserved for the unknown-account dirt.
            raise ValueError(
                f"{cfg.accounts} accounts plus {n_new} signed during the run exceed 90000: "
                "use fewer accounts, a shorter run or a lower new_account_rate"
            )
        self.team = make_team(cfg.accounts + n_new, rng)
        self.acc = Accounts(
            cfg.accounts,
            n_new,
            cfg.start,
            self.T,
            self.team,
            rng,
            cfg.no_consent_share,
            cfg.product_led_share,
        )
        self.users = Users(max(1024, int(self.acc.seats.sum())), cfg.opt_out_share)
        self.salt = int(rng.integers(0, 1 << 62))
        for i in range(cfg.accounts):
            population.initial_users(self, i, rng)
        self.delayed_arrival = plan_delayed_days(cfg, rng)
        self.pending: dict[int, list[str]] = {}  # landing day -> lines that arrive then
        self.pending_outcomes: dict[int, list[tuple]] = {}
        self.msg_counter = 0
        self.sess_counter = 0
        self.dirt = dict.fromkeys(DIRT_KINDS, 0)
        self.outcome_counts = dict.fromkeys(C.OUTCOMES, 0)
        self.truth_outcomes: list[tuple] = []
        self.quiet_accounts: list[tuple] = []
        self.events_written = 0
        self.opted_out_events = 0
        self.folders = 0
        self.snapshots = 0

    def date(self, t: int) -> dt.date:
        return self.cfg.start + dt.timedelta(days=t)

    def next_snapshot(self, t: int) -> int:
        """The first snapshot day on or after t (snapshots: day 0 and Mondays)."""
        return t + (7 - self.date(t).weekday()) % 7 if t > 0 else 0

    def live_users(self, t: int) -> np.ndarray:
        """Users of current customers who exist and have not left, as a mask over users."""
        u = self.users
        n = u.n
        return (self.acc.status[u.acct[:n]] == 1) & (u.active_from[:n] <= t) & (u.deact_day[:n] > t)

    def portal_users(self, t: int) -> np.ndarray:
        """Live users of accounts that still use the portal (not gone quiet)."""
        return self.live_users(t) & ~self.acc.quiet[self.users.acct[: self.users.n]]

    def lifecycle(self, t: int, rng: np.random.Generator) -> list[tuple]:
        """One day of customers and users: returns today's outcome rows."""
        acc, users = self.acc, self.users
        population.new_customers(self, t, rng)
        active = acc.status == 1
        decisions.evolve_health(self, rng)
        eng = sigmoid(acc.h)
        live = self.live_users(t)
        n_live = np.bincount(users.acct[: users.n][live], minlength=acc.n)
        util = n_live / np.maximum(acc.seats, 1)
        population.champion_departures(self, t, active, live, rng)
        population.user_turnover(self, t, active, live, eng, util, n_live, rng)
        decisions.decide(self, t, eng, util, rng)
        decisions.trials(self, t, active, rng)
        return decisions.execute(self, t, rng)

    def activity(self, t: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return day_events(self, t, rng)

    def lines(self, t: int, ev: dict[str, np.ndarray], rng: np.random.Generator):
        return event_lines(self, t, ev, rng)

    # -------------------------------------------------------------------- run
    def run(self, progress: Callable[[str], None] | None) -> SimSummary:
        started = time.perf_counter()
        health = None
        if self.truth_dir is not None:
            health = GzipCsvStream(
                self.truth_dir / "health_daily.csv.gz", ("account_id", "date", "latent_health")
            )
        # Files are compressed and written on a second thread (zlib releases the GIL) while the
        # next day is simulated; at most one day waits, so memory stays bounded.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landing-writer")
        try:
            self._days(pool, health, progress, started)
        finally:
            pool.shutdown(wait=True)
            if health is not None:
                health.close()
        assert not self.pending and not self.pending_outcomes, "lines left undelivered"
        if self.truth_dir is not None:
            write_truth(self)
        return SimSummary(
            days=self.T,
            accounts=self.acc.n,
            users=self.users.n,
            events_written=self.events_written,
            dirt=dict(self.dirt),
            outcomes=dict(self.outcome_counts),
            folders_written=self.folders,
            snapshots_written=self.snapshots,
            opted_out_events=self.opted_out_events,
            seconds=round(time.perf_counter() - started, 3),
        )

    def _days(
        self,
        pool: ThreadPoolExecutor,
        health: GzipCsvStream | None,
        progress: Callable[[str], None] | None,
        started: float,
    ) -> None:
        cfg = self.cfg
        last_report = started
        inflight: Future | None = None
        for t in range(self.T):
            day = self.date(t)
            outcome_rows = self.lifecycle(t, np.random.default_rng([cfg.seed, 1, t]))
            ev = self.activity(t, np.random.default_rng([cfg.seed, 2, t]))
            rd = np.random.default_rng([cfg.seed, 3, t])
            own, later = self.lines(t, ev, rd)
            for arrival, lines in later.items():
                self.pending.setdefault(arrival, []).extend(lines)
            if health is not None:
                acc = self.acc
                alive = np.flatnonzero((acc.status == 1) | (acc.churn_day == t))
                iso = day.isoformat()
                health.write(
                    "".join(
                        f"{acc.ids[i]},{iso},{h:.4f}\n"
                        for i, h in zip(alive.tolist(), acc.h[alive].tolist(), strict=True)
                    )
                )
            folder = self.out_dir / day.isoformat()
            if inflight is not None:
                inflight.result()  # re-raises a failed write here
                inflight = None
            if t in self.delayed_arrival:
                arrival = self.delayed_arrival[t]
                self.pending.setdefault(arrival, []).extend(own)
                self.pending_outcomes.setdefault(arrival, []).extend(outcome_rows)
                self.dirt["delayed_days"] += 1
                clear_folder(folder)  # a stale folder from an earlier run must not "arrive"
            else:
                lines = own + self.pending.pop(t, [])
                outcomes = self.pending_outcomes.pop(t, []) + outcome_rows
                snapshot = t == 0 or day.weekday() == 0
                empty = 0
                if rd.random() < cfg.dirt.rate("empty_file_rate"):
                    empty = 1 + int(rd.integers(0, 2))
                    self.dirt["empty_files"] += 1
                inflight = pool.submit(
                    write_folder,
                    folder,
                    day,
                    lines,
                    cfg.events_per_file,
                    cfg.compresslevel,
                    empty,
                    accounts_csv(self, t) if snapshot else None,
                    users_csv(self, t) if snapshot else None,
                    csv_text(OUTCOME_COLUMNS, outcomes),
                )
                self.events_written += len(lines)
                self.folders += 1
                self.snapshots += snapshot
                for row in outcomes:
                    self.outcome_counts[row[1]] += 1
            now = time.perf_counter()
            if progress is not None and (now - last_report >= 2.0 or t == self.T - 1):
                last_report = now
                rate = self.events_written / max(now - started, 1e-9)
                progress(
                    f"day {t + 1}/{self.T} ({day}): {self.events_written:,} events written, "
                    f"{rate:,.0f} events/s"
                )
        if inflight is not None:
            inflight.result()


def simulate(
    cfg: SimConfig,
    out_dir: Path,
    truth_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> SimSummary:
    """Simulate the portal from cfg.start to cfg.end, writing one landing folder per day.

    Writes into `out_dir` (created if missing; only the simulator's own files in the day folders
    it writes are replaced) and, when given, the hidden ground truth into `truth_dir`.
    """
    return Simulation(cfg, Path(out_dir), truth_dir).run(progress)
