"""The stack runs `airflow db migrate` before Airflow's components only when its database is not
at the installed Airflow's newest migration (devtools/stack.py)."""

import importlib.util
import sqlite3
from pathlib import Path

from alembic.script import ScriptDirectory

from devtools.stack import MIGRATE_FIRST, Stack, newest_migration

MIGRATIONS = Path(importlib.util.find_spec("airflow").origin).parent / "migrations"


def stack_in(home: Path) -> Stack:
    return Stack(airflow_home=home / "airflow", runtime_data_dir=home / "runtime",
                 run_dir=home / "run")  # fmt: skip


def database_at(stack: Stack, revision: str) -> None:
    stack.airflow_home.mkdir(parents=True)
    with sqlite3.connect(stack.airflow_home / "airflow.db") as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version VALUES (?)", (revision,))


def test_the_newest_migration_is_alembic_s_head_of_airflow_s_migrations():
    assert newest_migration() == ScriptDirectory(str(MIGRATIONS)).get_current_head()


def test_a_database_at_the_newest_migration_starts_the_components_without_migrating(tmp_path):
    stack = stack_in(tmp_path)
    database_at(stack, newest_migration())
    command = stack.airflow().command[-1]
    assert "airflow db migrate" not in command
    assert command.startswith("{ airflow scheduler")


def test_a_missing_or_older_database_is_migrated_before_the_components_start(tmp_path):
    missing = stack_in(tmp_path / "missing")
    assert missing.airflow().command[-1].startswith(MIGRATE_FIRST + "{ ")
    older = stack_in(tmp_path / "older")
    database_at(older, ScriptDirectory(str(MIGRATIONS)).get_revision("head").down_revision)
    assert older.airflow().command[-1].startswith(MIGRATE_FIRST)


def test_another_database_named_by_the_environment_is_always_migrated(tmp_path, monkeypatch):
    stack = stack_in(tmp_path)
    database_at(stack, newest_migration())
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://db/airflow")
    assert stack.airflow().command[-1].startswith(MIGRATE_FIRST)
