"""The simulated portal's product catalog: features, event names, plans, regions and time zones."""

from __future__ import annotations

# The dbt stage keeps the same lists; change both together.
STANDARD_FEATURES: tuple[str, ...] = (
    "dashboards",
    "reports",
    "search",
    "workflows",
    "integrations",
    "bulk_export",
)
PREMIUM_FEATURES: tuple[str, ...] = (
    "api_access",
    "advanced_analytics",
    "e_signature",
    "audit_log",
)
FEATURES: tuple[str, ...] = STANDARD_FEATURES + PREMIUM_FEATURES

# Canonical event names (exact strings from docs/contracts.md), indexed by the engine's codes.
SESSION_STARTED = 0
SESSION_ENDED = 1
DOCUMENT_VIEWED = 2
DOCUMENT_DOWNLOADED = 3
DOCUMENT_SHARED = 4
DOCUMENT_UPLOADED = 5
DOCUMENT_COMMENTED = 6
FEATURE_USED = 7
CSM_EMAIL_OPENED = 8
CSM_EMAIL_CLICKED = 9
EVENT_NAMES: tuple[str, ...] = (
    "Session Started",
    "Session Ended",
    "Document Viewed",
    "Document Downloaded",
    "Document Shared",
    "Document Uploaded",
    "Document Commented",
    "Feature Used",
    "CSM Email Opened",
    "CSM Email Clicked",
)

PLANS: tuple[str, ...] = ("starter", "growth", "enterprise")
ROLES: tuple[str, ...] = ("admin", "power", "casual")
OUTCOMES: tuple[str, ...] = ("churned", "renewed", "expanded", "contracted")

INDUSTRIES: tuple[str, ...] = (
    "software",
    "financial_services",
    "healthcare",
    "manufacturing",
    "retail",
    "education",
    "professional_services",
    "logistics",
)

# Region -> the IANA time zones its users live in (the first is the most common).
REGIONS: dict[str, tuple[str, ...]] = {
    "NA": (
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Los_Angeles",
        "America/Toronto",
    ),
    "EMEA": (
        "Europe/London",
        "Europe/Berlin",
        "Europe/Paris",
        "Europe/Madrid",
        "Europe/Amsterdam",
        "Europe/Stockholm",
        "Africa/Johannesburg",
        "Asia/Dubai",
    ),
    "APAC": ("Asia/Singapore", "Asia/Tokyo", "Australia/Sydney", "Asia/Kolkata"),
    "LATAM": ("America/Sao_Paulo", "America/Mexico_City", "America/Bogota"),
}
REGION_NAMES: tuple[str, ...] = tuple(REGIONS)
TIME_ZONES: tuple[str, ...] = tuple(tz for zones in REGIONS.values() for tz in zones)
