"""Time-based train / validation / test split with a horizon-sized gap between periods."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


class InsufficientLabelsError(ValueError):
    """Too few positive labels in some period to train or judge a model honestly."""


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    train_end: pd.Timestamp
    validation_start: pd.Timestamp
    validation_end: pd.Timestamp
    test_start: pd.Timestamp

    def describe(self, label: str) -> dict[str, object]:
        """Row and positive counts plus the period bounds, for logging."""
        out: dict[str, object] = {
            "train_end": self.train_end.date().isoformat(),
            "validation_start": self.validation_start.date().isoformat(),
            "validation_end": self.validation_end.date().isoformat(),
            "test_start": self.test_start.date().isoformat(),
        }
        for name, part in (
            ("train", self.train),
            ("validation", self.validation),
            ("test", self.test),
        ):
            out[f"{name}_rows"] = len(part)
            out[f"{name}_positives"] = int(part[label].sum())
        return out


def time_split(
    frame: pd.DataFrame,
    label: str,
    horizon_days: int,
    train_fraction: float,
    validation_fraction: float,
) -> Split:
    """Split observable rows by as_of_date: oldest dates train, then validation, then test.

    A row's label looks `horizon_days` ahead, so the rows of the `horizon_days` after the end of
    one period are dropped before the next starts: no label used for training can see an
    outcome that happens inside the validation or test period.

    Raises:
        ValueError: the frame lacks the label, or there are too few dates to leave the gaps.
    """
    for column in ("account_id", "as_of_date", label, "is_label_observable"):
        if column not in frame.columns:
            raise ValueError(f"The feature frame has no column {column!r}.")
    data = frame[frame["is_label_observable"].astype(bool) & frame[label].notna()].copy()
    data["as_of_date"] = pd.to_datetime(data["as_of_date"])
    dates = sorted(data["as_of_date"].unique())
    if not dates:
        raise ValueError(
            "No rows with an observable label: the data does not yet span the horizon."
        )
    first, last = pd.Timestamp(dates[0]), pd.Timestamp(dates[-1])
    gap = pd.Timedelta(days=horizon_days)
    # Divide the span that remains after the two gaps, so gaps never eat a whole period.
    usable = (last - first) - 2 * gap
    if usable <= pd.Timedelta(days=0):
        raise ValueError(
            f"Observable as-of dates span {first.date()}..{last.date()}, shorter than the two "
            f"{horizon_days}-day gaps a leak-free split needs; load more history or shorten "
            "the horizon."
        )
    train_end = (first + usable * train_fraction).floor("D")
    validation_start = train_end + gap
    validation_end = (validation_start + usable * validation_fraction).floor("D")
    test_start = validation_end + gap
    d = data["as_of_date"]
    train = data[d <= train_end]
    validation = data[(d > validation_start) & (d <= validation_end)]
    test = data[d > test_start]
    return Split(
        train=train.reset_index(drop=True),
        validation=validation.reset_index(drop=True),
        test=test.reset_index(drop=True),
        train_end=train_end,
        validation_start=validation_start,
        validation_end=validation_end,
        test_start=test_start,
    )


def check_positives(split: Split, label: str, minimums: dict[str, int]) -> None:
    """Raise InsufficientLabelsError naming every period's counts when any is below its minimum."""
    counts = {
        name: (int(part[label].sum()), len(part))
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
            "Load more history, lengthen the horizon, or lower the minimums in the training config."
        )
