"""Requests for a model no server has: the router's cold-start hold and admission, in the fluid model.

Each step's requests of one model from one region are alike, so one `Pending` stands for them all
(its ticket is their count) in the router's own `ColdStartHold`: it asks for the model at most once
per cooldown per region, gives up on requests after its timeout, and releases the rest when a
server has the model. Admission (`routing.admission`) may reject them first (too many models held).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llmfleet.simulate.options import REGIONS
from llmfleet.simulate.routing import admission
from services.router.domain.admission import AdmissionLimits, Verdict
from services.router.domain.cold_start import ColdStartHold
from services.router.domain.requests import Pending


@dataclass
class Held:
    """The hold, what it rejected per model, and a callback for each ModelRequested."""

    hold: ColdStartHold
    limits: AdmissionLimits
    ask: Callable[[str, str, float], None]  # (model, users' region, now): the router's ModelRequested
    rejected: dict[str, float] = field(default_factory=dict)
    _seq: int = 0

    def arrive(self, model_id: str, region: int, count: float, now: float) -> None:
        """`count` requests of a model no server has, from users in `region`."""
        where = REGIONS[region]
        verdict = admission(
            model_id, where, now, False, self.hold.count(model_id) > 0, len(self.hold.held), self.limits
        ).verdict
        if verdict is Verdict.REJECT:
            self.rejected[model_id] = self.rejected.get(model_id, 0.0) + count
            return
        self._seq += 1
        request = Pending(f"{model_id}/{where}/{now}", model_id, "", 1, now, self._seq, region=where, ticket=count)
        if self.hold.hold(request, now):
            self.ask(model_id, where, now)

    def expire(self, now: float) -> None:
        """Requests that waited as long as the hold lets them are rejected."""
        for request in self.hold.expire(now):
            self.rejected[request.model_id] = self.rejected.get(request.model_id, 0.0) + float(request.ticket)

    def release(self, model_id: str) -> list[tuple[int, float, float]]:
        """The held requests of a model a server now has: (users' region, count, arrived) of each group."""
        return [(REGIONS.index(r.region), float(r.ticket), r.arrived) for r in self.hold.release(model_id)]

    def count(self) -> float:
        """Requests held now."""
        return float(sum(float(r.ticket) for rs in self.hold.held.values() for r in rs))

    def take_rejected(self) -> dict[str, float]:
        """Rejections since the last call."""
        taken, self.rejected = self.rejected, {}
        return taken
