"""The date split: training window, held-out validation accounts, an embargo, the test period."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from ml.config import TrainConfig


class InsufficientLabelsError(ValueError):
    """Too few positive labels in some period to train or judge a model honestly."""


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    embargo_days: int

    def describe(self, label: str) -> dict[str, object]:
        """Rows, positives, positive accounts and the period bounds, for logging."""
        out: dict[str, object] = {
            "train_start": self.train_start.date().isoformat(),
            "train_end": self.train_end.date().isoformat(),
            "test_start": self.test_start.date().isoformat(),
            "test_end": self.test_end.date().isoformat(),
            "embargo_days": self.embargo_days,
        }
        for name, part in (
            ("train", self.train),
            ("validation", self.validation),
            ("test", self.test),
        ):
            positive = part[label].astype(int) == 1
            out[f"{name}_rows"] = len(part)
            out[f"{name}_positives"] = int(positive.sum())
            out[f"{name}_accounts"] = int(part["account_id"].nunique())
            out[f"{name}_positive_accounts"] = int(part.loc[positive, "account_id"].nunique())
        return out


def usable_rows(frame: pd.DataFrame, config: TrainConfig) -> pd.DataFrame:
    """The rows a model learns from and is judged on: in the population and observable.

    Every condition is a fact known on the row's as-of date (population, dormancy) or a
    function of the date alone (observable = the label window has passed): no row is kept or
    dropped because of what happens after its as-of date.
    """
    label, observable = config.label, config.observable_column
    for column in ("account_id", "as_of_date", label, observable):
        if column not in frame.columns:
            raise ValueError(
                f"The feature frame has no column {column!r}; rebuild marts.ml_features."
            )
    keep = frame[observable].fillna(False).astype(bool)
    if config.population_column and config.population_column in frame.columns:
        keep &= frame[config.population_column].fillna(False).astype(bool)
    if "is_dormant" in frame.columns:
        keep &= ~frame["is_dormant"].fillna(False).astype(bool)
    data = frame[keep].copy()
    if data[label].isna().any():
        raise ValueError(f"{label} is NULL on observable rows; rebuild marts.ml_features.")
    data["as_of_date"] = pd.to_datetime(data["as_of_date"])
    return data


def is_validation_account(account_ids: pd.Series, share: float, seed: int) -> pd.Series:
    """A stable pseudo-random share of accounts (by a hash of the id, not of anything observed)."""

    def bucket(account_id: str) -> float:
        digest = hashlib.md5(f"{seed}|{account_id}".encode()).hexdigest()
        return int(digest[:8], 16) / 0xFFFFFFFF

    unique = pd.Series(account_ids.unique())
    chosen = dict(zip(unique, unique.map(bucket) < share, strict=True))
    return account_ids.map(chosen).astype(bool)


def date_split(frame: pd.DataFrame, config: TrainConfig) -> Split:
    """Split usable rows by date, with `config.horizon_days` of embargo before the test period.

    Test: as-of dates in [test_start, test_end]. Training window: as-of dates up to train_end,
    where train_end + horizon_days < test_start, so no label used to train or calibrate looks
    into the test period. The training window's accounts are divided (by a hash of the account
    id) into training and validation accounts; validation keeps the last validation_days.

    Raises:
        ValueError: the dates are inconsistent, leave no embargo, or there is no data for a part.
    """
    data = usable_rows(frame, config)
    if data.empty:
        raise ValueError(
            "No rows with an observable label in the population: the data does not yet span "
            f"the {config.horizon_days}-day label window."
        )
    first, last = data["as_of_date"].min(), data["as_of_date"].max()
    embargo = pd.Timedelta(days=config.horizon_days)
    test_end = pd.Timestamp(config.test_end) if config.test_end else last
    if config.test_start:
        test_start = pd.Timestamp(config.test_start)
    else:
        usable = (test_end - first) - embargo
        if usable <= pd.Timedelta(days=0):
            raise ValueError(
                f"Observable as-of dates span {first.date()}..{last.date()}, shorter than the "
                f"{config.horizon_days}-day embargo a leak-free split needs; load more history "
                "or shorten the label window."
            )
        test_start = (test_end - usable * config.test_fraction).floor("D")
    train_end = (
        pd.Timestamp(config.train_end)
        if config.train_end
        else test_start - embargo - pd.Timedelta(days=1)
    )
    if not train_end + embargo < test_start:
        raise ValueError(
            f"train_end {train_end.date()} + the {config.horizon_days}-day label window reaches "
            f"test_start {test_start.date()}: training labels would see the test period. "
            f"Set train_end before {(test_start - embargo).date()}."
        )
    if test_end < test_start:
        raise ValueError(f"test_end {test_end.date()} is before test_start {test_start.date()}.")
    d = data["as_of_date"]
    window = data[d <= train_end]
    test = data[(d >= test_start) & (d <= test_end)]
    if window.empty or test.empty:
        raise ValueError(
            f"No usable rows in the training window (..{train_end.date()}: {len(window)}) or "
            f"the test period ({test_start.date()}..{test_end.date()}: {len(test)}); "
            f"observable as-of dates span {first.date()}..{last.date()}."
        )
    held = is_validation_account(window["account_id"], config.validation_share, config.seed)
    # Validation: the held-out accounts' rows of the window's last validation_days (closest in
    # time to the test period, so the calibration and the alert threshold fit it best).
    recent = window["as_of_date"] > train_end - pd.Timedelta(days=config.validation_days)
    return Split(
        train=window[~held].reset_index(drop=True),
        validation=window[held & recent].reset_index(drop=True),
        test=test.reset_index(drop=True),
        train_start=first,
        train_end=train_end,
        test_start=test_start,
        test_end=test_end,
        embargo_days=config.horizon_days,
    )


def check_positives(split: Split, label: str, minimums: dict[str, int]) -> None:
    """Raise InsufficientLabelsError naming every period's counts when any is below its minimum."""
    counts = {
        name: (int(part[label].astype(int).sum()), len(part))
        for name, part in (
            ("train", split.train),
            ("validation", split.validation),
            ("test", split.test),
        )
    }
    short = [name for name, (pos, _) in counts.items() if pos < minimums.get(name, 1)]
    if short:
        detail = ", ".join(
            f"{name}: {pos} positive of {rows} rows (need {minimums.get(name, 1)})"
            for name, (pos, rows) in counts.items()
        )
        raise InsufficientLabelsError(
            f"Too few positive {label!r} labels to train and judge a model ({detail}). "
            "Load more history, lengthen the label window, move the split dates, or lower the "
            "minimums in the training config."
        )
