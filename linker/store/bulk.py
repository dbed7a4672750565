"""Many rows into one table in one statement: the backfill's bulk writes.

SQLite gets one multi-row ``INSERT``. PostgreSQL gets ``COPY … FROM STDIN``: psycopg converts
the placeholders of a query longer than 4 KB anew on every execution (a multi-row INSERT of
128 exchanges is far longer), which cost a seventh of the backfill's writer thread; COPY sends
the rows with no query to parse. The values go through each column's own bind processing
(JSON, UTC datetimes), and columns left out get their Python defaults, as an INSERT would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from sqlalchemy import Column, Connection, Table, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session


def bulk_insert(s: Session, table: Table, rows: Sequence[dict[str, Any]], *,
                ids: bool = False) -> list[int]:
    """Insert ``rows`` (column values; every row has the same keys) in one statement; with
    ``ids``, the new rows' ids in the order of ``rows``. Raises SQLAlchemy's IntegrityError
    (and nothing is inserted) when a row breaks a constraint."""
    if not rows:
        return []
    connection = s.connection()
    if connection.dialect.name == "postgresql":
        return _copy(connection, table, rows, ids)
    statement = insert(table)
    if ids:
        returning = statement.returning(table.c.id, sort_by_parameter_order=True)
        return [int(i) for i in connection.execute(returning, list(rows)).scalars()]
    connection.execute(statement, list(rows))
    return []


def _copy(connection: Connection, table: Table, rows: Sequence[dict[str, Any]],
          ids: bool) -> list[int]:
    dialect = connection.dialect
    keys = list(rows[0])
    defaulted = [c for c in table.c if c.name not in keys and c.default is not None
                 and (c.default.is_scalar or c.default.is_callable)]
    columns = [table.c[k] for k in keys] + defaulted
    processed = [(k, _processor(table.c[k], dialect)) for k in keys]
    makers = [_default_of(c, dialect) for c in defaulted]
    new_ids: list[int] = []
    if ids:
        new_ids = [int(i) for i in connection.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence(%(table)s, 'id')) "
            "FROM generate_series(1, %(count)s)",
            {"table": table.name, "count": len(rows)}).scalars()]
        columns.insert(0, table.c.id)
    quote = dialect.identifier_preparer.quote
    sql = (f"COPY {quote(table.name)} ({', '.join(quote(c.name) for c in columns)}) "
           "FROM STDIN")
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for n, row in enumerate(rows):
                values = [row[k] if p is None else p(row[k]) for k, p in processed]
                values += [make() for make in makers]
                copy.write_row([new_ids[n], *values] if ids else values)
    except psycopg.Error as exc:  # as SQLAlchemy reports it (IntegrityError for a collision)
        raise DBAPIError.instance(sql, None, exc, psycopg.Error) from exc
    return new_ids


def _processor(column: Column[Any], dialect: Any) -> Callable[[Any], Any] | None:
    """What SQLAlchemy does to the column's values before the driver gets them."""
    processor: Callable[[Any], Any] | None = (
        column.type.dialect_impl(dialect).bind_processor(dialect))
    return processor


def _default_of(column: Column[Any], dialect: Any) -> Callable[[], Any]:
    """The column's Python default as the driver gets it, made anew for each row (as an INSERT
    does: a callable default such as the time is called per row)."""
    default: Any = column.default
    process = _processor(column, dialect) or (lambda value: value)
    if default.is_callable:
        return lambda: process(default.arg(None))
    value = process(default.arg)
    return lambda: value
