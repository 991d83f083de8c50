"""Warehouse operations: analyst access (masked views, read-only SQL) and personal-data erasure."""

from warehouse.analytics import ANALYTICS_SCHEMA, create_analytics_views, mask_email
from warehouse.connect import WarehouseNotFoundError, open_read_only
from warehouse.erasure import ErasureResult, erase_account, erase_user, identity_hash

__all__ = [
    "ANALYTICS_SCHEMA",
    "ErasureResult",
    "WarehouseNotFoundError",
    "create_analytics_views",
    "erase_account",
    "erase_user",
    "identity_hash",
    "mask_email",
    "open_read_only",
]
