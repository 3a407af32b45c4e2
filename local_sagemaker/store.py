"""Durable records: one JSON file per resource, written atomically, so state survives ``kill -9``.

Layout: ``<data_dir>/records/<kind>/<name>.json``. A write goes to a temporary file that is
fsynced and renamed over the old one, then the directory is fsynced: a reader (or a restarted
runtime) sees either the old record or the new one, never a torn file.

Callers own their record shapes; the store only needs them to be JSON-serialisable dicts.
Timestamps are kept as epoch seconds (floats), the JSON 1.1 wire form.
"""

import json
import os
import threading
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)


class RecordStore:
    """Write-through cache of records, grouped by kind (``"training-jobs"``, ``"models"``, ...).

    Thread-safe. ``get`` and ``list`` return deep copies, so callers may mutate what they get and
    ``put`` it back. Names are resource names, already validated by the API layer.
    """

    def __init__(self, root: Path):
        self.root = Path(root) / "records"
        self._lock = threading.RLock()
        self._cache: dict[str, dict[str, dict]] = {}

    def _kind_dir(self, kind: str) -> Path:
        return self.root / kind

    def _load_kind(self, kind: str) -> dict[str, dict]:
        if kind not in self._cache:
            records = {}
            directory = self._kind_dir(kind)
            if directory.is_dir():
                for path in sorted(directory.glob("*.json")):
                    records[path.stem] = json.loads(path.read_text())
            self._cache[kind] = records
        return self._cache[kind]

    def put(self, kind: str, name: str, record: dict) -> None:
        """Store ``record`` durably (fsynced before returning)."""
        data = json.dumps(record, sort_keys=True).encode()
        with self._lock:
            write_file_atomically(self._kind_dir(kind) / f"{name}.json", data)
            self._load_kind(kind)[name] = json.loads(data)

    def get(self, kind: str, name: str) -> dict | None:
        """A copy of the record, or None when there is none."""
        with self._lock:
            record = self._load_kind(kind).get(name)
            return None if record is None else json.loads(json.dumps(record))

    def list(self, kind: str) -> list[dict]:
        """Copies of every record of ``kind``, in name order."""
        with self._lock:
            records = self._load_kind(kind)
            return [json.loads(json.dumps(records[name])) for name in sorted(records)]

    def delete(self, kind: str, name: str) -> None:
        """Remove the record; a missing record is not an error."""
        with self._lock:
            path = self._kind_dir(kind) / f"{name}.json"
            if path.exists():
                path.unlink()
                fsync_directory(path.parent)
            self._load_kind(kind).pop(name, None)

    def update(self, kind: str, name: str, changes: dict) -> dict:
        """Merge ``changes`` into the stored record atomically and return the new record.

        Raises KeyError when there is no such record.
        """
        with self._lock:
            record = self.get(kind, name)
            if record is None:
                raise KeyError(f"no {kind} record named {name!r}")
            record.update(changes)
            self.put(kind, name, record)
            return record
