"""The models of the fleet file the allocator is seeded from (services/allocator/fleet.yaml).

The scaler reads only what sizes an instance: each model's performance-model model (`emulates`,
read as the allocator reads it), its preferred GPU type and its latency target.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from services.scaler.domain.capacity import ModelSpec
from shared.performance import MODELS


def _emulates(model_id: str, spec: Mapping[str, Any]) -> str | None:
    """`emulates`, else the model id when the performance model knows it; `emulates: null`: none."""
    if "emulates" not in spec:
        return model_id if model_id in MODELS else None
    return None if spec["emulates"] is None else str(spec["emulates"])


def read_model_specs(path: Path) -> dict[str, ModelSpec]:
    """Model id -> what sizes its instance, from the fleet file at `path` (OSError / ValueError when unreadable)."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not YAML: {error}") from error
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not all(isinstance(spec, dict) for spec in models.values()):
        raise ValueError(f"{path} has no `models` mapping of model id -> requirements")
    return {
        model_id: ModelSpec(
            model_id,
            _emulates(model_id, spec),
            str(spec.get("preferred_gpu", "")),
            None if spec.get("latency_target_ms") is None else float(spec["latency_target_ms"]),
        )
        for model_id, spec in models.items()
    }
