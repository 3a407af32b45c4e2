"""Connection arguments for the stack's SQLite metadata database.

Named by `[database] sql_alchemy_connect_args` in the stack's environment, so every Airflow
component and CLI command of the stack imports it: keep its imports to the standard library.

Airflow's scheduler, triggerer, dag-processor, api-server and CLI commands share one SQLite file,
and SQLite lets one writer in at a time. A writer that finds the lock taken waits for the busy
timeout, except in one case: a transaction that has read (and so holds a shared lock) and then
writes while another connection holds the write lock gets "database is locked" at once, since
waiting could deadlock. Python's sqlite3 starts a transaction at the first write, so that case
arises only where a SAVEPOINT started it: SQLAlchemy's `begin_nested()`, which
`airflow backfill create` uses around each run it inserts. CI saw exactly that, twice, while the
scheduler was writing. So a SAVEPOINT outside a transaction first takes the write lock
(BEGIN IMMEDIATE, which waits like any writer), writes start with BEGIN IMMEDIATE too, and the
busy timeout is a minute, longer than the scheduler holds the lock on a loaded 2-core machine.
Reads outside a transaction still take no lock.
"""

import sqlite3


class _Cursor(sqlite3.Cursor):
    def execute(self, sql, parameters=(), /):
        if sql.lstrip()[:9].upper() == "SAVEPOINT" and not self.connection.in_transaction:
            super().execute("BEGIN IMMEDIATE")
        return super().execute(sql, parameters)


class WriteLockFirstConnection(sqlite3.Connection):
    """A connection whose transactions take the write lock before they read."""

    def cursor(self, factory=_Cursor):
        return super().cursor(factory)


CONNECT_ARGS = {"timeout": 60, "isolation_level": "IMMEDIATE", "factory": WriteLockFirstConnection}
