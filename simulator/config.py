"""Configuration and result types of the portal simulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

# Dirt kinds, in the order SimSummary.dirt reports them.
DIRT_KINDS: tuple[str, ...] = (
    "duplicate_events",
    "late_events",
    "malformed_lines",
    "wrong_types",
    "unknown_accounts",
    "unknown_users",
    "future_timestamps",
    "empty_files",
    "delayed_days",
    "delayed_day_events",
)


@dataclass(frozen=True)
class DirtConfig:
    """How much bad input to inject. Event rates are fractions of generated events.

    `scale` multiplies every rate (0 = perfectly clean files); the CLI's `--dirt-scale` sets it.
    """

    duplicate_rate: float = 0.004
    late_rate: float = 0.01
    malformed_rate: float = 0.0005
    wrong_type_rate: float = 0.0005
    unknown_account_rate: float = 0.0003
    unknown_user_rate: float = 0.0003
    future_timestamp_rate: float = 0.0002
    # Per landing day: chance of an extra empty event file, and of the whole folder arriving late.
    empty_file_rate: float = 0.03
    delayed_day_rate: float = 0.01
    # Of the duplicates, the share that lands in a later folder (the rest repeat in the same file).
    duplicate_later_share: float = 0.5
    scale: float = 1.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise ValueError(f"DirtConfig.{f.name} must be >= 0, got {value}")
        if self.duplicate_later_share > 1:
            raise ValueError("DirtConfig.duplicate_later_share must be between 0 and 1")
        if self.event_rate_total() >= 0.5:
            raise ValueError(
                "DirtConfig event rates (times scale) add up to "
                f"{self.event_rate_total():.3f}; keep them below 0.5 so most events stay clean"
            )

    def rate(self, name: str) -> float:
        """A rate after scaling, capped at 1."""
        return min(1.0, getattr(self, name) * self.scale)

    def event_rate_total(self) -> float:
        return sum(
            getattr(self, n) * self.scale
            for n in (
                "duplicate_rate",
                "late_rate",
                "malformed_rate",
                "wrong_type_rate",
                "unknown_account_rate",
                "unknown_user_rate",
                "future_timestamp_rate",
            )
        )

    @classmethod
    def clean(cls) -> DirtConfig:
        """No dirt at all."""
        return cls(scale=0.0)


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Same config (including seed) = byte-identical files."""

    accounts: int
    start: dt.date
    end: dt.date
    seed: int = 7
    dirt: DirtConfig = field(default_factory=DirtConfig)
    # New accounts signed per year, as a share of `accounts` (they join on Mondays).
    new_account_rate: float = 0.1
    # Share of accounts without tracking consent, and of users who opted out of tracking.
    no_consent_share: float = 0.03
    opt_out_share: float = 0.04
    # Events per file before a new events-NNN.jsonl.gz is started.
    events_per_file: int = 200_000
    # gzip level: 1 is fastest; 6 is the usual default. Level does not change the content.
    compresslevel: int = 3
    # Scales every activity rate (events per active user), e.g. 0.5 for a lighter data set.
    activity_scale: float = 1.0
    # Share of accounts that are product-led (self-serve, monthly, no contract or renewal date).
    product_led_share: float = 0.3

    def __post_init__(self) -> None:
        if self.accounts < 1:
            raise ValueError(f"SimConfig.accounts must be >= 1, got {self.accounts}")
        if self.accounts > 80_000:
            raise ValueError("SimConfig.accounts must be <= 80000 (ids are a_00000..a_89999)")
        if self.end < self.start:
            raise ValueError(f"SimConfig.end ({self.end}) is before start ({self.start})")
        if not 1 <= self.compresslevel <= 9:
            raise ValueError("SimConfig.compresslevel must be between 1 and 9")
        for name in (
            "no_consent_share",
            "opt_out_share",
            "new_account_rate",
            "activity_scale",
            "product_led_share",
        ):
            value = getattr(self, name)
            if value < 0 or (name.endswith("share") and value > 1):
                raise ValueError(f"SimConfig.{name} is out of range: {value}")
        if self.events_per_file < 1:
            raise ValueError("SimConfig.events_per_file must be >= 1")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass
class SimSummary:
    """What a simulation wrote.

    `events_written` counts every line in every event file (clean, dirty and duplicate copies).
    `dirt` counts what was injected, per kind in DIRT_KINDS, exactly as written to the files:
    duplicate_events = extra copies; late_events = events landing 1-5 days after their own day
    (not counting delayed days); delayed_day_events = otherwise valid events of delayed (missing)
    folders, which arrive 1-3 days later. So late_events + delayed_day_events is the number of
    distinct, valid events that land after their own day. Each event carries at most one kind of
    dirt (a duplicate's original copy is clean). `outcomes` counts outcome rows written, per
    outcome. `opted_out_events` counts the events of opted-out users and of accounts without
    tracking consent, which ingestion must drop; they never carry dirt (no copies, not late).
    """

    days: int
    accounts: int
    users: int
    events_written: int
    dirt: dict[str, int]
    outcomes: dict[str, int] = field(default_factory=dict)
    folders_written: int = 0
    snapshots_written: int = 0
    opted_out_events: int = 0
    seconds: float = 0.0
