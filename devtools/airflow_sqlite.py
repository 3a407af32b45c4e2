"""Connection arguments for the stack's SQLite metadata database.

Named by `[database] sql_alchemy_connect_args` in the stack's environment, so every Airflow
component and CLI command of the stack imports it: keep it free of imports.

Python's sqlite3 gives up on a locked database after 5 s. On a loaded 2-core machine the
scheduler can hold the write lock longer, and `airflow backfill create` then failed with
"database is locked" after it had committed the backfill row but before its runs (Airflow removes
such a half-made backfill only on Postgres's and MySQL's lock errors, so the retry was refused as
"another backfill is running"). A minute of patience makes the writers take turns.
"""

CONNECT_ARGS = {"timeout": 60}
