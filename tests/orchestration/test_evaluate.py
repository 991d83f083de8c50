"""`ea evaluate` writes its tables only between its markers in the docs file."""

import pytest

from orchestration.evaluate import cdnow_file, write_docs


def test_sections_are_replaced_between_their_markers_and_nothing_else_changes(tmp_path):
    doc = tmp_path / "ml.md"
    doc.write_text(
        "# Title\nkept\n<!-- ea evaluate: cdnow -->\nold table\n<!-- /ea evaluate: cdnow -->\n"
        "also kept\n<!-- ea evaluate: simulator -->\n<!-- /ea evaluate: simulator -->\n"
    )
    write_docs(doc, "cdnow", "| new | table |")
    write_docs(doc, "cdnow", "| newer | table |")  # idempotent: replaces, never appends
    text = doc.read_text()
    assert "old table" not in text and "| new |" not in text and text.count("| newer |") == 1
    assert text.startswith("# Title\nkept\n") and "also kept" in text
    assert "Produced by `ea evaluate`" in text
    with pytest.raises(SystemExit, match="no '<!-- ea evaluate: elsewhere -->'"):
        write_docs(doc, "elsewhere", "x")


def test_cdnow_is_read_from_the_installed_wheel():
    path = cdnow_file()
    assert path.name == "CDNOW_master.txt" and path.stat().st_size > 1_000_000
