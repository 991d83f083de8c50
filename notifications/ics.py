"""RFC 5545 meeting invites (METHOD:REQUEST) built by hand: CRLF lines, folding, escaped text."""

from __future__ import annotations

import datetime as dt


def escape_text(value: str) -> str:
    """Escape a TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newlines."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def fold_line(line: str, limit: int = 75) -> str:
    """Fold a content line at `limit` octets without splitting a UTF-8 character (3.1)."""
    encoded = line.encode("utf-8")
    if len(encoded) <= limit:
        return line
    parts: list[str] = []
    current = b""
    budget = limit
    for ch in line:
        b = ch.encode("utf-8")
        if len(current) + len(b) > budget:
            parts.append(current.decode("utf-8"))
            current = b""
            budget = limit - 1  # continuation lines start with one space
        current += b
    parts.append(current.decode("utf-8"))
    return "\r\n ".join(parts)


def _utc(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y%m%dT%H%M%SZ")


def meeting_request(
    *,
    uid: str,
    organizer_email: str,
    attendees: list[str],
    summary: str,
    description: str,
    start: dt.datetime,
    duration_minutes: int = 30,
    stamp: dt.datetime,
    organizer_name: str = "",
) -> str:
    """A VCALENDAR with one VEVENT, METHOD:REQUEST; naive datetimes are taken as UTC."""
    end = start + dt.timedelta(minutes=duration_minutes)
    organizer = f"ORGANIZER;CN={escape_param(organizer_name)}" if organizer_name else "ORGANIZER"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Engagement Alerts//Deliveries//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:REQUEST",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{_utc(stamp)}",
        f"DTSTART:{_utc(start)}",
        f"DTEND:{_utc(end)}",
        f"SUMMARY:{escape_text(summary)}",
        f"DESCRIPTION:{escape_text(description)}",
        f"{organizer}:mailto:{organizer_email}",
    ]
    for email in attendees:
        lines.append(
            f"ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{email}"
        )
    lines += ["SEQUENCE:0", "STATUS:CONFIRMED", "TRANSP:OPAQUE", "END:VEVENT", "END:VCALENDAR"]
    return "".join(fold_line(line) + "\r\n" for line in lines)


def escape_param(value: str) -> str:
    """Parameter values cannot hold quotes; quote them when they contain separators."""
    cleaned = value.replace('"', "'")
    return f'"{cleaned}"' if any(c in cleaned for c in ":;,") else cleaned


def parse(text: str) -> list[tuple[str, dict[str, str], str]]:
    """Unfold and split an iCalendar text into (name, params, value) tuples (for checks/tests)."""
    if "\n" in text.replace("\r\n", ""):
        raise ValueError("iCalendar lines must end with CRLF")
    unfolded: list[str] = []
    for raw in text.split("\r\n"):
        if raw.startswith((" ", "\t")) and unfolded:
            unfolded[-1] += raw[1:]
        elif raw:
            unfolded.append(raw)
    out = []
    for line in unfolded:
        head, _, value = line.partition(":")
        name, *params = head.split(";")
        out.append((name.upper(), dict(p.split("=", 1) for p in params), value))
    return out


def unescape_text(value: str) -> str:
    """Inverse of `escape_text`."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append("\n" if nxt in "nN" else nxt)
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)
