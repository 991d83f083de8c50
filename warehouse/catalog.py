"""What the connected DuckDB database holds: the one place that asks the catalogue.

`table_exists` and `table_columns` look at the connection's current database and its temporary
tables (where an unqualified name would resolve), never at another attached file.
"""

from __future__ import annotations

_WHERE = (
    "table_schema = ? and table_name = ? and table_catalog in (current_database(), 'temp')"
)


def table_type(con, schema: str, table: str) -> str | None:
    """'BASE TABLE', 'VIEW' or 'LOCAL TEMPORARY' (schema "main"); None when it does not exist.
    The current database's object comes first when a temporary table has the same name.
    """
    rows = con.execute(
        f"select table_type from information_schema.tables where {_WHERE} "
        "order by table_catalog = 'temp'",
        [schema, table],
    ).fetchall()
    return rows[0][0] if rows else None


def table_exists(con, schema: str, table: str) -> bool:
    """True when `schema.table` is a table or a view (temporary tables: schema "main")."""
    return table_type(con, schema, table) is not None


def table_columns(con, schema: str, table: str) -> dict[str, str]:
    """Column name -> DuckDB type of `schema.table`, in column order; empty when it is missing."""
    rows = con.execute(
        "select column_name, data_type from information_schema.columns "
        f"where {_WHERE} order by ordinal_position",
        [schema, table],
    ).fetchall()
    return dict(rows)
