"""A request as the router's core sees it: what batching and routing need, plus an opaque ticket."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.events import RoutingStrategy


@dataclass(frozen=True, slots=True)
class Pending:
    """One admitted request waiting for, or riding in, a batch. Times are monotonic seconds."""

    request_id: str
    model_id: str
    prompt: str
    max_tokens: int
    arrived: float
    seq: int
    temperature: float = 0.0
    top_p: float = 1.0
    priority: int = 0
    region: str = "us-east-1"
    strategy: RoutingStrategy = RoutingStrategy.BALANCED
    deadline: float | None = None
    fail_fast: bool = False
    stream: bool = False  # tokens go to the reply topic as they come (its own Triton call, no batch)
    # The shell's handle (offset, span, reply topic); the core never looks inside.
    ticket: Any = field(default=None, compare=False, repr=False)

    @property
    def tokens(self) -> int:
        """Tokens the request costs a batch: its prompt (byte-level tokenizer) plus what it may generate."""
        return len(self.prompt) + self.max_tokens

    def expired(self, now: float) -> bool:
        """True once the request's deadline has passed."""
        return self.deadline is not None and now >= self.deadline
