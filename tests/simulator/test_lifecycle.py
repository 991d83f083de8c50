"""Lifecycle bookkeeping edge cases that only show up in long or large runs."""

import datetime as dt

import numpy as np

from simulator import SimConfig
from simulator.engine import Simulation


def test_several_accounts_without_users_can_name_a_new_champion_on_the_same_day(tmp_path):
    cfg = SimConfig(accounts=6, start=dt.date(2025, 1, 6), end=dt.date(2025, 1, 31), seed=1)
    sim = Simulation(cfg, tmp_path / "landing", None)
    users, acc = sim.users, sim.acc
    # Everyone has left every account, and all successors are due today.
    users.deact_day[: users.n] = 0
    acc.admin_user[:] = -1
    acc.admin_replace_day[:] = 1
    before = users.n
    sim.lifecycle(1, np.random.default_rng(0))
    assert (acc.admin_user >= before).sum() == np.sum(acc.status == 1)
    assert set(users.role[acc.admin_user[acc.status == 1]]) == {0}
    # The new champions start once the next snapshot (Monday 13 January) lists them.
    assert set(users.active_from[acc.admin_user[acc.status == 1]]) == {7}


def test_csm_team_has_books_of_tens_of_accounts_and_managers_of_three_to_five(tmp_path):
    cfg = SimConfig(accounts=2000, start=dt.date(2025, 1, 6), end=dt.date(2025, 1, 7), seed=2)
    sim = Simulation(cfg, tmp_path / "landing", None)
    books = np.bincount(sim.acc.csm)
    assert 10 <= books.min() and books.max() <= 150 and 40 <= books.mean() <= 70
    teams = np.bincount(sim.team.csm_manager)
    assert teams.min() >= 3 and teams.max() <= 5
    assert len(set(sim.team.csm_email) | set(sim.team.manager_email)) == len(books) + len(teams)
