"""Why event files are read as lines and parsed in SQL rather than with a typed `read_json`."""

import duckdb


def test_typed_read_json_loses_the_line_numbers_provenance_needs(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"a": "x"}\n\n{"a": \n{"a": "z"}\n')  # line 2 blank, line 3 malformed
    with duckdb.connect() as con:
        rows = con.execute(
            "select a from read_json(?, format = 'newline_delimited', ignore_errors = true, "
            "columns = {'a': 'VARCHAR'})",
            [str(path)],
        ).fetchall()
    # Four lines give three rows: the blank line is gone and the malformed one is a NULL row,
    # so the row order no longer says which line of the file a row came from.
    assert rows == [("x",), (None,), ("z",)]
