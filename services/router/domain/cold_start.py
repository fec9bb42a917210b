"""Requests held for a model no server has yet (cold start), until a server comes or time runs out."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.router.domain.requests import Pending


@dataclass
class ColdStartHold:
    """Held requests per model; asks for a model at most once per cooldown."""

    timeout_s: float
    cooldown_s: float
    held: dict[str, list[Pending]] = field(default_factory=dict)
    asked_at: dict[str, float] = field(default_factory=dict)

    def hold(self, request: Pending, now: float) -> bool:
        """Hold the request; True when the model should be asked for now (first ask or cooldown over)."""
        self.held.setdefault(request.model_id, []).append(request)
        last = self.asked_at.get(request.model_id)
        if last is None or now - last >= self.cooldown_s:
            self.asked_at[request.model_id] = now
            return True
        return False

    def count(self, model_id: str) -> int:
        """How many requests for the model are held."""
        return len(self.held.get(model_id, ()))

    def release(self, model_id: str) -> list[Pending]:
        """Hand back every request held for the model (a server now has it)."""
        self.asked_at.pop(model_id, None)
        return self.held.pop(model_id, [])

    def reject(self, model_id: str, region: str | None = None) -> list[Pending]:
        """Take out the held requests of the model (from `region` if given): their model cannot come."""
        keep: list[Pending] = []
        out: list[Pending] = []
        for request in self.held.get(model_id, []):
            (out if region is None or request.region == region else keep).append(request)
        if keep:
            self.held[model_id] = keep
        else:
            self.held.pop(model_id, None)
            self.asked_at.pop(model_id, None)
        return out

    def give_up_at(self, request: Pending) -> float:
        """When a held request stops waiting: its deadline or the cold-start timeout, whichever first."""
        limit = request.arrived + self.timeout_s
        return limit if request.deadline is None else min(limit, request.deadline)

    def expire(self, now: float) -> list[Pending]:
        """Take out the requests that waited as long as they may."""
        out: list[Pending] = []
        for model_id in list(self.held):
            waiting = self.held[model_id]
            out.extend(r for r in waiting if now >= self.give_up_at(r))
            self.held[model_id] = [r for r in waiting if now < self.give_up_at(r)]
            if not self.held[model_id]:
                del self.held[model_id]
        return out

    def next_expiry(self) -> float | None:
        """The next moment a held request gives up; None when nothing is held."""
        return min((self.give_up_at(r) for rs in self.held.values() for r in rs), default=None)
