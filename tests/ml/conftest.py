"""Fixtures for the ml tests: one synthetic grid (plumbing only) and one trained model."""

from __future__ import annotations

import pytest

from ml.config import churn_config
from ml.train import train_model
from tests.ml.synthetic import feature_grid

HORIZON = 56


@pytest.fixture(scope="session")
def grid():
    return feature_grid(horizon_days=HORIZON)


@pytest.fixture(scope="session")
def churn_cfg():
    return churn_config(horizon_days=HORIZON, bootstrap_samples=60)


@pytest.fixture(scope="session")
def churn_result(grid, churn_cfg):
    return train_model(grid, churn_cfg)


@pytest.fixture()
def mlflow_uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
