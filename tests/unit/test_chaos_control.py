"""The chaos suite's control path: its track in the schedule, its counting (pure), and its teardown sweep."""

from __future__ import annotations

import itertools
import subprocess
from collections import Counter

import pytest

from benchmarks.chaos.control import processes_in, sweep
from benchmarks.chaos.control_tally import (
    NO_ROW,
    ActionRow,
    ControlFigures,
    Duplicates,
    GpuCount,
    PoolRow,
    ServerRow,
    Snapshot,
    control_passed,
    count_control,
    extra_processes,
    gpu_conservation_violations,
    leaked_servers,
    stuck_actions,
    triton_key,
    unfinished_actions,
)
from benchmarks.chaos.schedule import (
    CONTROL,
    DEFAULT,
    EXCLUSIVE,
    QUICK,
    FaultKind,
    KillPhase,
    exclusive_windows,
    plan,
)

PROFILES = [DEFAULT, QUICK]

# ------------------------------------------------------------------ the control track


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("seed", range(20))
def test_every_kill_phase_a_second_allocator_and_control_poison_are_planned(seed, profile):
    control = [f for f in plan(seed, profile).faults if f.kind in CONTROL]
    phases = Counter(f.detail for f in control if f.kind is FaultKind.ALLOCATOR_KILL)
    assert phases == Counter(p.value for p in KillPhase)
    assert [f.duration_s for f in control if f.kind is FaultKind.ALLOCATOR_JOIN] == list(profile.allocator_joins)
    assert sum(f.kind is FaultKind.CONTROL_POISON for f in control) == profile.control_poisons >= 1
    assert all(f.count in (1, 2) for f in control if f.kind is FaultKind.ALLOCATOR_KILL)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("seed", range(20))
def test_control_faults_take_turns_and_never_overlap_a_kafka_or_postgres_outage(seed, profile):
    schedule = plan(seed, profile)
    control = [f for f in schedule.faults if f.kind in CONTROL]
    spans = [(f.at_s, f.at_s + f.duration_s + profile.allowance_s[f.kind]) for f in control]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end
    for start, end in spans:
        for down_start, down_end in exclusive_windows(schedule, profile):
            assert end <= down_start or start >= down_end, (start, end, down_start, down_end)
    assert max(end for _, end in spans) + profile.tail_s <= schedule.phase_s + 1e-6


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("seed", range(20))
def test_the_control_poison_comes_last_on_its_track(seed, profile):
    control = [f for f in plan(seed, profile).faults if f.kind in CONTROL]
    assert control[-1].kind is FaultKind.CONTROL_POISON
    assert all(f.kind is not FaultKind.CONTROL_POISON for f in control[: -profile.control_poisons])


def test_postgres_is_down_60_s_and_30_s_in_quick_while_a_scale_up_is_in_flight():
    assert [f.duration_s for f in plan(1).faults if f.kind is FaultKind.POSTGRES_DOWN] == [60.0]
    assert [f.duration_s for f in plan(1, QUICK).faults if f.kind is FaultKind.POSTGRES_DOWN] == [30.0]
    assert {FaultKind.KAFKA_DOWN, FaultKind.POSTGRES_DOWN} == EXCLUSIVE


def test_the_control_track_depends_on_the_seed():
    orders = {tuple(f.detail for f in plan(seed).faults if f.kind in CONTROL) for seed in range(10)}
    assert len(orders) > 3


def test_stuck_means_five_minutes_in_a_full_run():
    assert DEFAULT.stuck_after_s == 300.0
    assert DEFAULT.settle_s == QUICK.settle_s == 60.0
    assert QUICK.stuck_after_s < DEFAULT.stuck_after_s


# ------------------------------------------------------------------ leaks

A, B, C = "chaosalloc-us-east-1-aaaa", "chaosalloc-us-east-1-bbbb", "chaosalloc-us-east-1-cccc"


def key(server_id):
    return triton_key(server_id)


def test_a_server_id_becomes_the_key_its_process_carries():
    assert key(A) == "chaosalloc_us_east_1_aaaa"


def test_live_rows_with_their_processes_leak_nothing():
    rows = [ServerRow(A, "running"), ServerRow(B, "starting"), ServerRow(C, "stopping")]
    assert leaked_servers({1: key(A), 2: key(B), 3: key(C)}, rows).count == 0


def test_a_process_without_a_live_row_leaks():
    rows = [ServerRow(A, "released"), ServerRow(B, "failed")]
    leaks = leaked_servers({10: key(A), 11: key(B), 12: key(C)}, rows)
    assert leaks.count == 3
    assert leaks.orphans == (f"{key(A)} (pid 10)", f"{key(B)} (pid 11)", f"{key(C)} (pid 12)")


def test_a_running_row_whose_process_is_gone_leaks_but_one_an_action_is_starting_or_stopping_does_not():
    rows = [ServerRow(A, "running", "up"), ServerRow(B, "starting", "up"), ServerRow(C, "stopping", "down")]
    working = [ActionRow("up", "in_progress", 10.0), ActionRow("down", "in_progress", 10.0)]
    leaks = leaked_servers({}, rows, working)
    assert leaks.dead_rows == (f"{A} (running)",)
    assert leaks.count == 1


def test_a_starting_or_stopping_row_without_a_process_leaks_once_its_action_is_closed():
    rows = [ServerRow(B, "starting", "up"), ServerRow(C, "stopping", "down"), ServerRow(A, "released", "down")]
    closed = [ActionRow("up", "failed", 100.0), ActionRow("down", "done", 100.0)]
    assert leaked_servers({}, rows, closed).dead_rows == (f"{B} (starting)", f"{C} (stopping)")
    assert leaked_servers({1: key(B), 2: key(C)}, rows, closed).count == 0


# ------------------------------------------------------------------ actions


def test_only_actions_in_progress_longer_than_the_limit_are_stuck():
    actions = [
        ActionRow("old", "in_progress", 301.0),
        ActionRow("young", "in_progress", 299.0),
        ActionRow("done", "done", 900.0),
        ActionRow("failed", "failed", 900.0),
    ]
    assert stuck_actions(actions, 300.0) == ["old"]
    assert stuck_actions(actions, 120.0) == ["old", "young"]


def test_an_action_published_but_never_recorded_or_still_in_progress_is_unfinished():
    actions = [ActionRow("a", "done", 5.0), ActionRow("b", "in_progress", 5.0), ActionRow("c", "failed", 5.0)]
    assert unfinished_actions(["a", "b", "c", "lost"], actions) == ["b", "lost"]


# ------------------------------------------------------------------ GPU conservation


def pool(total=6, available=4, reserved=1):
    return PoolRow("us-east-1", "a100_80gb", total, available, reserved)


def gpus(free=4, reserved=1, outside=1, **servers):
    rows = [GpuCount("us-east-1", "a100_80gb", "free", None, free)] if free else []
    rows += [GpuCount("us-east-1", "a100_80gb", "reserved", None, reserved)] if reserved else []
    rows += [GpuCount("us-east-1", "a100_80gb", "allocated", None, outside)] if outside else []
    rows += [GpuCount("us-east-1", "a100_80gb", "allocated", s, n) for s, n in servers.items()]
    return tuple(rows)


def test_the_seeded_pool_is_conserved():
    assert gpu_conservation_violations(Snapshot(pools=(pool(),), gpus=gpus())) == []


def test_gpus_allocated_to_live_servers_are_conserved():
    snap = Snapshot(
        servers=(ServerRow("s1", "running"), ServerRow("s2", "starting")),
        pools=(pool(available=2),),
        gpus=gpus(free=2, s1=1, s2=1),
    )
    assert gpu_conservation_violations(snap) == []


def test_counters_that_disagree_with_the_rows_are_a_violation():
    assert len(gpu_conservation_violations(Snapshot(pools=(pool(available=3),), gpus=gpus()))) == 1
    assert len(gpu_conservation_violations(Snapshot(pools=(pool(total=7),), gpus=gpus()))) == 1
    assert len(gpu_conservation_violations(Snapshot(pools=(pool(reserved=0),), gpus=gpus()))) == 1


def test_each_gpu_allocated_to_a_server_that_is_not_live_is_a_violation():
    snap = Snapshot(
        servers=(ServerRow("gone", "released"),),
        pools=(pool(available=2),),
        gpus=gpus(free=2, gone=2),
    )
    found = gpu_conservation_violations(snap)
    assert len(found) == 2
    assert all("gone" in f for f in found)


def test_gpu_rows_of_a_pool_without_counters_are_a_violation():
    assert len(gpu_conservation_violations(Snapshot(pools=(), gpus=gpus()))) == 1


# ------------------------------------------------------------------ duplicates


def test_one_process_per_server_is_no_duplicate():
    owners = {key(A): "act-1", key(B): "act-1"}
    assert extra_processes({1: key(A), 2: key(B)}, owners) == {}


def test_two_processes_under_one_server_id_count_against_its_action():
    owners = {key(A): "act-1", key(B): "act-2"}
    assert extra_processes({1: key(A), 2: key(A), 3: key(A), 4: key(B)}, owners) == {"act-1": 2}


def test_a_process_whose_server_id_no_row_has_counts():
    assert extra_processes({1: key(C)}, {key(A): "act-1"}) == {NO_ROW: 1}


def test_duplicates_keep_the_worst_sample_and_the_creating_action():
    seen = Duplicates()
    seen.own([ServerRow(A, "starting", "up-1")])
    seen.own([ServerRow(A, "stopping", "down-2")])  # the unload action does not take the server over
    seen.sample({1: key(A)})
    seen.sample({1: key(A), 2: key(A)}, at_s=12.0)
    seen.sample({2: key(A)})  # one replaced by another later: no duplicate
    assert seen.worst == {"up-1": 1}
    assert seen.figure == 1
    assert seen.examples and "up-1" in seen.examples[0]


def test_processes_started_one_after_another_are_no_duplicate():
    seen = Duplicates()
    seen.own([ServerRow(A, "running", "up-1")])
    for pid in (1, 2, 3):
        seen.sample({pid: key(A)})
    assert seen.figure == 0


# ------------------------------------------------------------------ the figures and the verdict


def clean_snapshot():
    return Snapshot(
        servers=(ServerRow(A, "running", "up-1"), ServerRow(B, "released", "up-1")),
        actions=(ActionRow("up-1", "done", 400.0), ActionRow("down-2", "done", 200.0)),
        pools=(pool(available=3),),
        gpus=gpus(free=3, **{A: 1}),
    )


def figures(processes=None, snapshot=None, published=("up-1", "down-2"), poison=(("t", 0, 1),), letters=(("t", 0, 1),)):
    dup = Duplicates()
    snap = snapshot or clean_snapshot()
    dup.own(snap.servers)
    procs = {1: key(A)} if processes is None else processes
    dup.sample(procs)
    return count_control(procs, snap, dup, list(published), 300.0, list(poison), letters)


def test_a_converged_fleet_passes():
    found = figures()
    assert (found.leaked_servers, found.stuck_actions, found.gpu_conservation_violations) == (0, 0, 0)
    assert (found.duplicate_servers_per_action, found.unfinished_actions) == (0, 0)
    assert (found.poison_sent, found.poison_deadlettered) == (1, 1)
    assert found.details["actions_deadlettered"] == 0
    assert control_passed(found)


def test_dead_letters_of_the_control_topics_that_were_no_poison_are_reported():
    found = figures(letters=(("t", 0, 1), ("t", 0, 7), ("t", 0, 8)))
    assert found.details["actions_deadlettered"] == 2


@pytest.mark.parametrize(
    "broken",
    [
        {"processes": {1: key(A), 2: key(C)}},  # an orphan process
        {"processes": {}},  # the running server's process is gone
        {
            "snapshot": Snapshot(
                servers=(ServerRow(A, "stopping", "down-2"),),
                actions=(ActionRow("down-2", "failed", 100.0),),
                pools=(pool(available=3),),
                gpus=gpus(free=3, **{A: 1}),
            ),
            "processes": {},
            "published": (),
        },  # a row left stopping, its action closed
        {"processes": {1: key(A), 2: key(A)}},  # a duplicate
        {"published": ("up-1", "down-2", "never-seen")},  # an action never answered
        {"letters": ()},  # a poison record never parked
        {
            "snapshot": Snapshot(
                servers=(ServerRow(A, "running", "up-1"),),
                actions=(ActionRow("up-1", "in_progress", 301.0),),
                pools=(pool(available=3),),
                gpus=gpus(free=3, **{A: 1}),
            ),
            "published": (),
        },  # stuck
        {
            "snapshot": Snapshot(
                servers=(ServerRow(A, "running", "up-1"),), pools=(pool(available=4),), gpus=gpus(free=3, **{A: 1})
            ),
            "published": (),
        },  # counters off
    ],
)
def test_any_failed_figure_fails_the_control_path(broken):
    assert not control_passed(figures(**broken))


def test_the_verdict_reads_every_figure():
    zero = ControlFigures(0, 0, 0, 0, 0, 2, 2)
    assert control_passed(zero)
    for field in ("leaked_servers", "stuck_actions", "gpu_conservation_violations", "duplicate_servers_per_action"):
        assert not control_passed(ControlFigures(**{**zero.__dict__, field: 1}))


# ------------------------------------------------------------------ teardown


def test_the_sweep_stops_what_still_works_in_the_run_folder_and_nothing_else(tmp_path):
    inside, outside = tmp_path / "stack" / "logs", tmp_path / "elsewhere"
    inside.mkdir(parents=True)
    outside.mkdir()
    left = subprocess.Popen(["sleep", "60"], cwd=inside)
    other = subprocess.Popen(["sleep", "60"], cwd=outside)
    try:
        assert processes_in(tmp_path / "stack") == [left.pid]
        assert sweep(tmp_path / "stack") == [left.pid]
        assert left.wait(timeout=15) != 0
        assert other.poll() is None
    finally:
        for process in (left, other):
            process.kill()
            process.wait()
