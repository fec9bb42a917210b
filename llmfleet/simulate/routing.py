"""Where each users' region's requests for a model are served, and what happens when no server has it.

The router ranks servers per batch (`services.router.domain.scoring.rank`): near, idle, cheap,
reliable. A batch goes to the best server, which makes it busier, so in the fluid limit traffic
fills regions in score order until their scores meet. `route` does that with a vectorised twin of
`score` (tests/unit/simulate/test_twins.py proves it picks what `rank` picks), handing out each
users' region's demand in `chunks` slices, one region per slice. Candidates are regions (a
region's servers of a model share one load in the fluid model), named by region, as `rank` breaks
ties by server id.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from llmfleet.simulate.options import REGIONS
from services.router.domain.admission import Admission, AdmissionLimits, ModelLoad, Verdict, admit
from services.router.domain.geo import normalised_distance
from services.router.domain.requests import Pending
from services.router.domain.scoring import COST_SCALE_PER_HOUR, WEIGHTS
from shared.events import RoutingStrategy

Array = NDArray[np.float64]
# Candidates in server-id order (rank's tie-break); the engine's axis is REGIONS.
ORDER = np.argsort(np.array(REGIONS))
CLOSENESS = np.array([[1.0 - normalised_distance(u, r) for r in REGIONS] for u in REGIONS])
SCALE = 1000.0  # rates to milli-requests/s, so the load term's max(1, capacity) never bites


def scores(
    user: int, strategy: RoutingStrategy, cost: Array, capacity: Array, inflight: Array, ok: Array, failed: Array
) -> Array:
    """`scoring.score` of candidates in REGIONS order (last axis) for users in region index `user`."""
    w = WEIGHTS[strategy]
    load = np.minimum(1.0, inflight / np.maximum(1, capacity))
    total = ok + failed
    history = np.where(total == 0, 1.0, ok / np.where(total == 0, 1, total))
    terms = (
        CLOSENESS[user],
        1.0 - load,
        np.where(inflight < capacity, 1.0, 0.0),
        history,
        1.0 - np.minimum(1.0, cost / COST_SCALE_PER_HOUR),
    )
    weights = (w.distance, w.load, w.availability, w.history, w.cost)
    result = weights[0] * terms[0]
    for weight, term in zip(weights[1:], terms[1:], strict=True):
        result = result + weight * term  # the same order of additions as score(), so ties stay ties
    return np.asarray(result)


def best(
    user: int, strategy: RoutingStrategy, cost: Array, capacity: Array, inflight: Array, present: NDArray[np.bool_]
) -> NDArray[np.int64]:
    """The index (into REGIONS) of `rank`'s first candidate, per row; -1 where no region is present."""
    zero = np.zeros_like(capacity)
    value = np.where(present, scores(user, strategy, cost, capacity, inflight, zero, zero), -np.inf)
    chosen = ORDER[np.argmax(value[..., ORDER], axis=-1)]  # argmax keeps the first of equal scores
    return np.where(present.any(axis=-1), chosen, -1)


def route(demand: Array, capacity: Array, cost: Array, strategy: RoutingStrategy, chunks: int = 4) -> Array:
    """Shares [model, users' region, serving region] of each users' region's demand (rows of zeros: no server)."""
    models, users = demand.shape
    assigned = np.zeros_like(capacity)
    shares = np.zeros((models, users, len(REGIONS)))
    present = capacity > 0
    rows = np.arange(models)
    for _ in range(chunks):
        for u in range(users):
            chosen = best(u, strategy, cost, capacity * SCALE, assigned * SCALE, present)
            ok = chosen >= 0
            target = np.maximum(chosen, 0)
            assigned[rows[ok], target[ok]] += demand[ok, u] / chunks
            shares[rows[ok], u, target[ok]] += 1.0 / chunks
    return shares


def admission(
    model_id: str, region: str, now: float, known: bool, held: bool, held_models: int, limits: AdmissionLimits
) -> Admission:
    """The router's verdict for the requests of one model from one region in one step (they are alike).

    The simulated requests carry no deadline, no fail-fast and no max_tokens limit, so a model some
    server has is always batched (a test proves it against `admit`); otherwise `admit` decides.
    """
    if known:
        return Admission(Verdict.BATCH)
    request = Pending(f"{model_id}/{region}/{now}", model_id, "", 1, now, 0, region=region)
    load = ModelLoad(queued=0, known=False, held_models=held_models, held=held)
    return admit(request, now, load, limits)
