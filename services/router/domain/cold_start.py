"""Requests held for a model no server has yet (cold start), until a server comes or time runs out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from services.router.domain.requests import Pending


@dataclass
class ColdStartHold:
    """Held requests per model; asks for a model at most once per cooldown in each users' region.

    Asking per region lets the scaler place the first instance near every region whose users are
    waiting, not only near whoever came first.
    """

    timeout_s: float
    cooldown_s: float
    held: dict[str, list[Pending]] = field(default_factory=dict)
    asked_at: dict[tuple[str, str], float] = field(default_factory=dict)

    def hold(self, request: Pending, now: float) -> bool:
        """Hold the request; True when the model should be asked for now (first ask or cooldown over)."""
        self.held.setdefault(request.model_id, []).append(request)
        key = (request.model_id, request.region)
        last = self.asked_at.get(key)
        if last is None or now - last >= self.cooldown_s:
            self.asked_at[key] = now
            return True
        return False

    def count(self, model_id: str) -> int:
        """How many requests for the model are held."""
        return len(self.held.get(model_id, ()))

    def release(self, model_id: str) -> list[Pending]:
        """Hand back every request held for the model (a server now has it)."""
        self._forget_asks(model_id)
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
            self._forget_asks(model_id)
        return out

    def _forget_asks(self, model_id: str) -> None:
        for key in [k for k in self.asked_at if k[0] == model_id]:
            del self.asked_at[key]

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
                self._forget_asks(model_id)  # bounded: model ids come from producers
        return out

    def take_where(self, belongs: Callable[[Pending], bool]) -> list[Pending]:
        """Take out every held request for which `belongs` holds (their partition moved elsewhere)."""
        out: list[Pending] = []
        for model_id in list(self.held):
            keep = [r for r in self.held[model_id] if not belongs(r)]
            out.extend(r for r in self.held[model_id] if belongs(r))
            if keep:
                self.held[model_id] = keep
            else:
                del self.held[model_id]
                self._forget_asks(model_id)
        return out

    def next_expiry(self) -> float | None:
        """The next moment a held request gives up; None when nothing is held."""
        return min((self.give_up_at(r) for rs in self.held.values() for r in rs), default=None)
