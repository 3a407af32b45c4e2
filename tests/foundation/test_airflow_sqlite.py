"""The stack's SQLite connections (devtools/airflow_sqlite.py) wait for the write lock in the one
case where Python's sqlite3 gives up at once: a SAVEPOINT-started transaction that reads, then
writes, while another connection holds the write lock (`airflow backfill create` does this)."""

import sqlite3
import threading

import pytest

from devtools.airflow_sqlite import CONNECT_ARGS

HELD_S = 1.0


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "airflow.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE dag_run (id INTEGER)")
    return path


def hold_write_lock(path, held: threading.Event) -> threading.Thread:
    """Another writer (the scheduler) holds the write lock for HELD_S, then commits."""

    def write():
        db = sqlite3.connect(path, isolation_level=None, timeout=60)
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO dag_run VALUES (1)")
        held.set()
        threading.Event().wait(HELD_S)
        db.execute("COMMIT")
        db.close()

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def read_then_write(db: sqlite3.Connection) -> None:
    cursor = db.cursor()
    cursor.execute("SAVEPOINT create_run")
    cursor.execute("SELECT count(*) FROM dag_run").fetchall()
    cursor.execute("INSERT INTO dag_run VALUES (2)")
    cursor.execute("RELEASE SAVEPOINT create_run")
    db.commit()


def run_against_a_held_lock(path, **connect_args) -> None:
    held = threading.Event()
    writer = hold_write_lock(path, held)
    held.wait()
    db = sqlite3.connect(path, **connect_args)
    try:
        read_then_write(db)
    except sqlite3.OperationalError:
        db.rollback()  # as SQLAlchemy does: it ends the transaction and frees the writer
        raise
    finally:
        db.close()
        writer.join()


def test_python_s_default_gives_up_at_once_even_with_a_busy_timeout(database):
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        run_against_a_held_lock(database, timeout=60)


def test_the_stack_s_connection_waits_for_the_lock_and_writes(database):
    run_against_a_held_lock(database, **CONNECT_ARGS)
    with sqlite3.connect(database) as db:
        assert sorted(row[0] for row in db.execute("SELECT id FROM dag_run")) == [1, 2]
