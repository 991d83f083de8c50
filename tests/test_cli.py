import importlib
import subprocess
import sys
from pathlib import Path

from orchestration.cli import COMMANDS, apply_defaults


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
