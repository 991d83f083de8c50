"""`dbt docs generate` works on a built warehouse and documents every mart column."""

import json
import os
import subprocess

import pytest

from tests.marts.conftest import marts_module


@pytest.mark.slow
def test_docs_generate_documents_every_mart_model_and_column(built, tmp_path):
    world, _ = built
    marts = marts_module()
    target = tmp_path / "docs"
    result = subprocess.run(
        [
            marts.DBT_EXECUTABLE,
            "docs",
            "generate",
            "--project-dir",
            str(marts.DBT_DIR),
            "--profiles-dir",
            str(marts.DBT_DIR),
            "--target-path",
            str(target),
        ],
        env={**os.environ, "DUCKDB_DATABASE": str(world.db)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    undocumented = []
    for uid, node in manifest["nodes"].items():
        if node["resource_type"] != "model" or node["schema"] != "marts":
            continue
        if not node["description"]:
            undocumented.append(uid)
        for column in catalog["nodes"][uid]["columns"]:
            if not node["columns"].get(column, {}).get("description"):
                undocumented.append(f"{uid}.{column}")
    assert undocumented == []
