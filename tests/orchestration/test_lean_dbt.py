"""The dbt speed-up overrides two private dagster-dbt methods: fail loudly if they stop applying."""

import subprocess
from functools import cached_property

import pytest
from dagster_dbt import DbtCliResource

from orchestration.defs import marts


def test_overridden_private_methods_still_exist_upstream():
    # If dagster-dbt renames them, our overrides become dead code and every dbt call slows down.
    for name in ("_cli_version", "_initialize_dbt_core_adapter"):
        assert hasattr(DbtCliResource, name), f"dagster-dbt no longer has {name}; update LeanDbt"
        assert name in marts.LeanDbtCliResource.__dict__


def test_a_dbt_command_uses_both_overrides_and_runs_no_version_process(tmp_path, monkeypatch):
    monkeypatch.setenv("DUCKDB_DATABASE", str(tmp_path / "w.duckdb"))
    calls: list[str] = []

    class Spy(marts.LeanDbtCliResource):
        @cached_property
        def _cli_version(self):
            calls.append("version")
            return marts.LeanDbtCliResource._cli_version.func(self)

        def _initialize_dbt_core_adapter(self, args):
            calls.append("adapter")
            return super()._initialize_dbt_core_adapter(args)

    spawned: list[list[str]] = []
    real_popen = subprocess.Popen

    def popen(args, *a, **k):
        spawned.append([str(x) for x in args])
        return real_popen(args, *a, **k)

    monkeypatch.setattr(subprocess, "Popen", popen)
    dbt = Spy(
        project_dir=marts.dbt_project,
        profiles_dir=str(marts.DBT_DIR),
        dbt_executable=marts.DBT_EXECUTABLE,
        target=marts.DBT_TARGET,
    )
    manifest = marts.dbt_project.manifest_path
    invocation = dbt.cli(["ls", "--select", "stg_raw__events"], manifest=manifest)
    invocation.wait()
    assert "version" in calls and "adapter" in calls, "dagster-dbt stopped calling the overrides"
    assert not any("--version" in a for a in spawned), f"a dbt --version process ran: {spawned}"
    assert any("ls" in a for a in spawned), "the dbt command itself did not run"


if __name__ == "__main__":
    pytest.main([__file__])
