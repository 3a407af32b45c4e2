"""What the hostile-input tests share: the ledger of inputs and outcomes, and curl."""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import dataclass, field

BUCKET = "security-tests"
PLANTED_KEY = "code/job/sourcedir.tar.gz"
PLANTED_BODY = b"the owner's source dir"


@dataclass
class HostileLedger:
    """What the hostile inputs got: one status per input, and the damage counted."""

    statuses: list[tuple[str, int]] = field(default_factory=list)
    # Inputs the API accepts, as AWS does, whose job or endpoint then fails with a clear reason.
    failed_jobs: list[str] = field(default_factory=list)
    damage: Counter = field(default_factory=Counter)

    def answered(self, name: str, status: int) -> int:
        self.statuses.append((name, status))
        return status

    def failed_cleanly(self, name: str) -> None:
        self.failed_jobs.append(name)

    def found(self, kind: str, count: int) -> int:
        self.damage[kind] += count
        return count

    def summary(self) -> str:
        clean = sum(1 for _, status in self.statuses if 400 <= status < 500)
        errors = [name for name, status in self.statuses if status >= 500]
        other = [f"{name} ({status})" for name, status in self.statuses if status < 400]
        lines = [
            f"hostile inputs tried: {len(self.statuses) + len(self.failed_jobs)}",
            f"  clean 4xx: {clean}",
            f"  accepted, then the job or endpoint failed cleanly: {len(self.failed_jobs)}",
            f"  5xx: {len(errors)} {errors if errors else ''}".rstrip(),
            f"  not refused (2xx/3xx): {len(other)} {other if other else ''}".rstrip(),
        ]
        for kind in (
            "files outside the data dir",
            "lost objects",
            "orphan processes",
            "sandbox escapes",
        ):
            lines.append(f"  {kind}: {self.damage[kind]}")
        return "\n".join(lines)


LEDGER = HostileLedger()


def curl(*arguments: str) -> tuple[int, str]:
    """``curl`` as a person types it; returns (HTTP status, body)."""
    done = subprocess.run(
        ["curl", "-s", "-m", "20", "-o", "-", "-w", "\n%{http_code}", *arguments],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    body, _, status = done.stdout.rpartition("\n")
    return int(status or 0), body
