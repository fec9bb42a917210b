"""A recommendation: what to change, why, what it saves, and a stable identity for dedupe."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Recommendation:
    """One change that would cost less; `action` is what applying it asks for."""

    kind: str  # spot | reserved | rightsize | capacity_mix | region_plan
    key: str  # what it is about, stable across cycles: kind + pool or model
    summary: str
    savings_per_month: float
    action: dict[str, Any]
    evidence: dict[str, Any] = field(default_factory=dict)
    region: str | None = None
    gpu_type: str | None = None
    model_id: str | None = None

    @property
    def fingerprint(self) -> str:
        """Hash of the key and the action: equal when a new cycle recommends the same change.

        Evidence (utilisation, prices) drifts every cycle; only a different action is news.
        """
        body = json.dumps({"key": self.key, "action": self.action}, sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    @property
    def recommendation_id(self) -> str:
        """Deterministic id: the same recommendation gets the same id on every replica and cycle."""
        return f"{self.kind}-{self.fingerprint}"
