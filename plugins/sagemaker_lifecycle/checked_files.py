"""Files of a dataset already verified and hashed, so re-checking an unchanged dataset reads no
image: one JSON file per dataset root under `dataset.cache_dir/checked/`.

A file counts as unchanged while its path, size and mtime (nanoseconds) are those recorded; that
is the test rsync and `aws s3 sync` make. Only files of a dataset that passed verification are
recorded, and the record is dropped when dataset.max_image_pixels changes, so a cached file is
one that decoded within the current limit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


class CheckedFiles:
    """The verified files of one dataset root, and the SHA-256 of each."""

    def __init__(self, record: Path, max_pixels: int):
        self.record, self.max_pixels = record, max_pixels
        self._known: dict[str, list] = {}
        self._checked: dict[str, list] = {}
        if record.exists():
            stored = json.loads(record.read_text())
            if stored.get("max_image_pixels") == max_pixels:
                self._known = stored["files"]

    @classmethod
    def for_root(cls, cache_dir: Path, root: Path, max_pixels: int) -> CheckedFiles:
        key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
        return cls(cache_dir / "checked" / f"{key}.json", max_pixels)

    def sha256(self, path: Path) -> str | None:
        """The recorded SHA-256 of `path` if it is unchanged since it was checked, else None."""
        known = self._known.get(str(path))
        if known is None:
            return None
        info = os.stat(path)
        return known[2] if known[:2] == [info.st_size, info.st_mtime_ns] else None

    def add(self, path: Path, size: int, mtime_ns: int, sha256: str) -> None:
        self._checked[str(path)] = [size, mtime_ns, sha256]

    def save(self) -> None:
        """Write the files checked this time (files since removed drop out), atomically."""
        self.record.parent.mkdir(parents=True, exist_ok=True)
        partial = self.record.with_name(self.record.name + f".{os.getpid()}.part")
        partial.write_text(json.dumps({"max_image_pixels": self.max_pixels,
                                       "files": self._checked}))  # fmt: skip
        partial.replace(self.record)
