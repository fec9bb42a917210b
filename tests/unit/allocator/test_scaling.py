"""Scaling actions into provisioning steps: fill, start, reuse over the cap, drain smallest first."""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from services.allocator.domain.fleet import Pool
from services.allocator.domain.planner import gpu_share
from services.allocator.domain.scaling import (
    AddInstances,
    RemoveInstances,
    Server,
    StartServer,
    plan_scaling,
    room_for,
)


def ids():
    counter = itertools.count(1)
    return lambda: f"s{next(counter)}"


def test_scale_up_from_nothing_starts_a_server_on_the_preferred_type(fleet, pools):
    # gpt-3.5-turbo (20B in the performance model) needs 52 GB with its KV cache: one per 80 GB GPU.
    plan = plan_scaling(fleet.models["gpt-3.5-turbo"], "us-east-1", 3, [], fleet, pools, ids(), max_servers=4)
    assert plan.failure is None
    assert plan.steps == (StartServer("s1", "us-east-1", "a100_80gb", 3, "gpt-3.5-turbo", 3),)


def test_scale_up_fills_room_first(fleet, pools):
    server = Server("s0", "us-east-1", "a100_80gb", 2, {"gpt-3.5-turbo": 1})
    assert room_for(server, fleet.models["gpt-3.5-turbo"], fleet) == 1
    plan = plan_scaling(fleet.models["gpt-3.5-turbo"], "us-east-1", 6, [server], fleet, pools, ids(), max_servers=4)
    assert plan.steps == (
        AddInstances("s0", "gpt-3.5-turbo", 1, load=False),
        StartServer("s1", "us-east-1", "a100_80gb", 4, "gpt-3.5-turbo", 4),
    )


def test_over_the_server_cap_reuses_a_server_with_room_or_fails(fleet, pools):
    busy = Server("s0", "us-east-1", "a100_80gb", 1, {"tinylm": 1})
    plan = plan_scaling(fleet.models["echo"], "us-east-1", 2, [busy], fleet, pools, ids(), max_servers=1)
    assert plan.steps == (AddInstances("s0", "echo", 2, load=True),)
    full = replace(busy, placements={"tinylm": 4})
    failed = plan_scaling(fleet.models["echo"], "us-east-1", 2, [full], fleet, pools, ids(), max_servers=1)
    assert failed.steps == () and failed.failure is not None and "server limit reached (1 servers)" in failed.failure


def test_insufficient_gpus_fail_the_whole_action(fleet, pools):
    none_free = {k: replace(p, available=0, reserved=p.total) for k, p in pools.items()}
    plan = plan_scaling(fleet.models["echo"], "eu-west-1", 1, [], fleet, none_free, ids(), max_servers=4)
    assert plan.steps == () and plan.failure is not None and "insufficient resources" in plan.failure


def test_scale_down_empties_the_smallest_servers_first_and_stops_empty_ones(fleet, pools):
    servers = [
        Server("a", "us-east-1", "a100_80gb", 1, {"echo": 4}),
        Server("b", "us-east-1", "a100_80gb", 1, {"echo": 1}),
        Server("c", "us-east-1", "a100_80gb", 1, {"echo": 2, "tinylm": 1}),
        Server("d", "eu-west-1", "a100_80gb", 1, {"echo": 4}),
    ]
    plan = plan_scaling(fleet.models["echo"], "us-east-1", 2, servers, fleet, pools, ids(), max_servers=4)
    assert plan.steps == (
        RemoveInstances("b", "echo", 1, unload=True, stop=True),
        RemoveInstances("c", "echo", 2, unload=True, stop=False),
        RemoveInstances("a", "echo", 2, unload=False, stop=False),
    )
    assert plan_scaling(fleet.models["echo"], "us-east-1", 7, servers, fleet, pools, ids(), 4).steps == ()


def test_a_server_too_slow_for_the_latency_target_has_no_room(fleet):
    a100 = Server("s0", "us-east-1", "a100_80gb", 1, {})
    relaxed = replace(fleet.models["llama-2-13b"], latency_target_ms=None)
    assert room_for(a100, relaxed, fleet) == 1
    # The performance model: one reference request takes 2,207 ms on one a100, 1,863 ms on two in
    # tensor parallel. At 2 s an instance needs two GPUs, which this one-GPU server lacks.
    strict = replace(relaxed, latency_target_ms=2000)
    assert gpu_share(strict, fleet.gpus["a100_80gb"]) == 2 and room_for(a100, strict, fleet) == 0
    assert room_for(replace(a100, gpu_count=2), strict, fleet) == 1


@st.composite
def fleet_state(draw, fleet):
    models = ["echo", "tinylm", "gpt-3.5-turbo", "llama-2-13b"]
    servers = []
    for n in range(draw(st.integers(0, 4))):
        gpu_type = draw(st.sampled_from(["a100_80gb", "v100_32gb"]))
        count = draw(st.integers(1, 3))
        server = Server(f"old{n}", "us-east-1", gpu_type, count, {})
        placements: dict[str, int] = {}
        for model in draw(st.lists(st.sampled_from(models), unique=True, max_size=2)):
            room = room_for(replace(server, placements=placements), fleet.models[model], fleet)
            if room:
                placements[model] = draw(st.integers(1, room))
        servers.append(replace(server, placements=placements))
    free = {t: draw(st.integers(0, 6)) for t in ("a100_80gb", "h100_80gb", "v100_32gb")}
    pools = {("us-east-1", t): Pool("us-east-1", t, total=20, available=n) for t, n in free.items()}
    return servers, pools, draw(st.sampled_from(models)), draw(st.integers(0, 20)), draw(st.integers(1, 6))


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_a_plan_reaches_the_target_exactly_within_gpus_room_and_server_cap(fleet, data):
    servers, pools, model, target, cap = data.draw(fleet_state(fleet))
    plan = plan_scaling(fleet.models[model], "us-east-1", target, servers, fleet, pools, ids(), max_servers=cap)
    if plan.failure is not None:
        assert plan.steps == ()
        return
    after = {s.server_id: dict(s.placements) for s in servers}
    shape = {s.server_id: (s.gpu_type, s.gpu_count) for s in servers}
    taken: dict[str, int] = {}
    for step in plan.steps:
        if isinstance(step, StartServer):
            after[step.server_id] = {model: step.instances}
            shape[step.server_id] = (step.gpu_type, step.gpu_count)
            taken[step.gpu_type] = taken.get(step.gpu_type, 0) + step.gpu_count
        elif isinstance(step, AddInstances):
            assert step.load == (model not in after[step.server_id])
            after[step.server_id][model] = after[step.server_id].get(model, 0) + step.instances
        else:
            after[step.server_id][model] -= step.instances
            assert after[step.server_id][model] >= 0
            assert step.unload == (after[step.server_id][model] == 0)
    assert sum(p.get(model, 0) for p in after.values()) == target
    assert len(after) <= max(cap, len(servers))  # new servers only under the cap
    for gpu_type, n in taken.items():
        assert n <= pools[("us-east-1", gpu_type)].available  # never more GPUs than are free
    for server_id, placements in after.items():
        gpu_type, count = shape[server_id]
        used = sum(n * gpu_share(fleet.models[m], fleet.gpus[gpu_type]) for m, n in placements.items() if n)
        assert used <= count  # never more instances than the GPUs hold
