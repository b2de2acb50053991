"""What one import call did: the counts, warnings and bad records the faces show."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImportReport:
    """What one import call did (counts are for this call only)."""

    trajectories: int = 0
    succeeded: int = 0
    failed: int = 0
    steps: int = 0
    duplicates_skipped: int = 0
    runs: int = 0
    procedures: int = 0
    revisions: int = 0
    procedures_skipped: int = 0
    embeddings_replaced: int = 0  # unusable embeddings dropped at the door and recomputed
    restored: bool = False  # an admin's restore: statuses, pins, counts and audit kept
    write_seconds: float = 0.0  # how long the one write transaction (the lock) was held
    warnings: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "trajectories": self.trajectories,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "steps": self.steps,
            "duplicates_skipped": self.duplicates_skipped,
            "runs": self.runs,
            "procedures": self.procedures,
            "revisions": self.revisions,
            "procedures_skipped": self.procedures_skipped,
            "embeddings_replaced": self.embeddings_replaced,
        }
