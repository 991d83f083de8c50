import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.cli import COMMANDS, apply_defaults, main

REPO = Path(__file__).resolve().parents[1]


def test_every_subcommand_resolves_to_a_callable():
    for name, cmd in COMMANDS.items():
        module_name, func_name = cmd.target.split(":")
        func = getattr(importlib.import_module(module_name), func_name, None)
        assert callable(func), f"ea {name}: {cmd.target} is not callable"
        assert cmd.example.startswith(f"ea {name}")


def test_help_lists_every_command_and_unknown_command_fails():
    exe = Path(sys.executable).parent / "ea"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert f"  {name} " in out
    bad = subprocess.run([exe, "no-such-command"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown command" in bad.stderr


def test_defaults_fill_only_unset_variables(tmp_path):
    env = {"EA_DATA_DIR": str(tmp_path / "elsewhere"), "PATH": "/usr/bin"}
    apply_defaults(env, cwd=tmp_path)
    assert env["DUCKDB_DATABASE"] == f"{tmp_path}/elsewhere/warehouse.duckdb"
    assert env["EA_CONFIG_DIR"] == f"{tmp_path}/config"
    assert env["PATH"].startswith(str(Path(sys.executable).parent))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_helps_under_its_ea_name_with_an_example(name, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # main() sets argv[0] to "ea <name>"
    for var in ("EA_DATA_DIR", "DUCKDB_DATABASE", "DAGSTER_HOME"):
        monkeypatch.setenv(var, os.environ.get(var, ""))  # apply_defaults() may fill them
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: ea {name} "), out[:80]
    assert "example" in out.lower() and f"\n  ea {name}" in out


def test_alerts_subcommands_each_show_their_own_example(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    for sub in ("validate", "list", "ack", "snooze", "resolve", "backtest"):
        assert main(["alerts", sub, "--help"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: ea alerts {sub} ") and f"\n  ea alerts {sub}" in out


def test_readme_lists_every_command():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## The command line", 1)[1].split("\n## ", 1)[0]
    for name in COMMANDS:
        assert f"`ea {name}" in section, f"README's command list misses ea {name}"


def test_a_command_runs_end_to_end_through_the_console_script(tmp_path):
    """`ea alerts validate` checks the shipped rules; `ea alerts list` with no warehouse says so
    and creates nothing (the embedded default points into ./data of the current folder)."""
    exe = Path(sys.executable).parent / "ea"
    env = {"PATH": "/usr/bin:/bin", "EA_CONFIG_DIR": str(REPO / "config")}
    ok = subprocess.run(
        [exe, "alerts", "validate"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert ok.returncode == 0, ok.stderr
    assert "rules" in ok.stdout.lower()
    bad = subprocess.run(
        [exe, "alerts", "list", "--as", "x@example.com"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2 and "no warehouse at" in bad.stderr
    assert not (tmp_path / "data").exists()
