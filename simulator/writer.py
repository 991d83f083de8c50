"""Writes landing folders (events, snapshots, outcomes, manifest) and the ground-truth files."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from pathlib import Path

# Files this simulator owns inside a landing folder; only these are removed on a re-run.
_OWNED_PATTERNS = (
    "events-*.jsonl.gz",
    "accounts.csv",
    "users.csv",
    "outcomes.csv",
    "_manifest.json",
)

ACCOUNT_COLUMNS = (
    "account_id",
    "account_name",
    "domain",
    "plan",
    "seats",
    "arr",
    "contract_start_date",
    "renewal_date",
    "csm_name",
    "csm_email",
    "manager_name",
    "manager_email",
    "industry",
    "region",
    "tracking_consent",
)
USER_COLUMNS = (
    "user_id",
    "account_id",
    "email",
    "role",
    "created_at",
    "deactivated_at",
    "opted_out",
)
OUTCOME_COLUMNS = ("account_id", "outcome", "effective_date", "arr_delta")


def gzip_bytes(data: bytes, level: int) -> bytes:
    """Gzip with a zero mtime and no file name, so equal input gives equal bytes."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def csv_text(columns: tuple[str, ...], rows: list[tuple]) -> str:
    """CSV with newline line ends; values are plain (the simulator never emits commas or quotes)."""
    out = io.StringIO()
    out.write(",".join(columns) + "\n")
    for row in rows:
        out.write(",".join(row) + "\n")
    return out.getvalue()


def clear_folder(folder: Path) -> None:
    """Remove files an earlier run of the simulator left here (others' files are kept)."""
    if not folder.is_dir():
        return
    for pattern in _OWNED_PATTERNS:
        for path in folder.glob(pattern):
            path.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()


def write_folder(
    folder: Path,
    landing_date: dt.date,
    event_lines: list[str],
    events_per_file: int,
    compresslevel: int,
    empty_file: int,
    accounts_csv: str | None,
    users_csv: str | None,
    outcomes_csv: str,
) -> dict[str, int]:
    """Write one landing folder, the manifest last; returns file name -> byte size."""
    clear_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, int] = {}

    def put(name: str, data: bytes) -> None:
        (folder / name).write_bytes(data)
        files[name] = len(data)

    n_files = 0
    for lo in range(0, len(event_lines), events_per_file):
        chunk = "".join(event_lines[lo : lo + events_per_file]).encode()
        put(f"events-{n_files:03d}.jsonl.gz", gzip_bytes(chunk, compresslevel))
        n_files += 1
    if empty_file:
        # Both kinds of "nothing" exporters produce: a 0-byte file and a gzip of no lines.
        put(f"events-{n_files:03d}.jsonl.gz", b"" if empty_file == 1 else gzip_bytes(b"", 6))
    if accounts_csv is not None:
        put("accounts.csv", accounts_csv.encode())
    if users_csv is not None:
        put("users.csv", users_csv.encode())
    put("outcomes.csv", outcomes_csv.encode())
    manifest = {"landing_date": landing_date.isoformat(), "files": files}
    (folder / "_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return files


class GzipCsvStream:
    """A gzip CSV written row block by row block (bounded memory), deterministic bytes."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._gz = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6
        )
        self._gz.write((",".join(columns) + "\n").encode())

    def write(self, text: str) -> None:
        self._gz.write(text.encode())

    def close(self) -> None:
        self._gz.close()
        self._raw.close()
