import pytest

from bench.profile_ingest import main
from tests.ingest.conftest import account, event, user, write_day


def test_the_profile_names_the_statements_of_a_real_load(tmp_path, capsys):
    landing = tmp_path / "landing"
    write_day(landing, "2025-03-04", events=[event("m1"), event("m2"), event("m2")],
              accounts=[account("a1")], users=[user("u1", "a1")])  # fmt: skip
    write_day(landing, "2025-03-05", events=[event("m3", ts="2025-03-05T09:00:00Z")])
    args = ["--landing", str(landing), "--database", str(tmp_path / "w.duckdb"), "--top", "100"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 landing days, 3 events stored")
    assert "insert into raw.events" in out


def test_an_existing_warehouse_is_refused(tmp_path, capsys):
    (tmp_path / "w.duckdb").write_bytes(b"")
    with pytest.raises(SystemExit) as exc:
        main(["--landing", str(tmp_path), "--database", str(tmp_path / "w.duckdb")])
    assert exc.value.code == 2
    assert "exists; give a new file" in capsys.readouterr().err
