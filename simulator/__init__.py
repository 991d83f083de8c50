"""A seeded, deterministic simulator of a B2B customer portal that writes landing files."""

from simulator.config import DIRT_KINDS, DirtConfig, SimConfig, SimSummary
from simulator.engine import simulate

__all__ = ["DIRT_KINDS", "DirtConfig", "SimConfig", "SimSummary", "simulate"]
