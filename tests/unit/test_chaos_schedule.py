"""The chaos suite's fault schedule (a pure function of the seed) and its counting of recorded data."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from benchmarks.chaos.schedule import CONTROL, DEFAULT, INSTANT, QUICK, FaultKind, kafka_windows, plan
from benchmarks.chaos.tally import Result, Sample, Sent, count_results, count_stalls, passed

FORBIDDEN = frozenset({"fleet.allocations.v1", "__consumer_offsets"})


# ------------------------------------------------------------------ schedule


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_the_same_seed_gives_the_same_schedule(seed):
    assert plan(seed) == plan(seed)
    assert plan(seed, QUICK) == plan(seed, QUICK)


def test_different_seeds_give_different_orders():
    orders = {tuple(f.kind for f in plan(seed).faults) for seed in range(10)}
    assert len(orders) > 5


@pytest.mark.parametrize("seed", range(20))
def test_the_default_schedule_holds_every_fault_the_issue_names(seed):
    schedule = plan(seed)
    kinds = Counter(f.kind for f in schedule.faults)
    assert kinds[FaultKind.ROUTER_KILL] >= 2
    assert kinds[FaultKind.ROUTER_JOIN] >= 2
    assert kinds[FaultKind.TRITON_KILL] >= 2
    assert kinds[FaultKind.POISON] >= 2
    assert kinds[FaultKind.OVERLOAD] >= 1
    assert sorted(f.duration_s for f in schedule.faults if f.kind is FaultKind.KAFKA_DOWN) == [5.0, 20.0, 60.0]
    assert [f.duration_s for f in schedule.faults if f.kind is FaultKind.POSTGRES_DOWN] == [60.0]
    assert [f.duration_s for f in schedule.faults if f.kind is FaultKind.TRITON_STOP] == [90.0]
    overload = next(f for f in schedule.faults if f.kind is FaultKind.OVERLOAD)
    assert (overload.count, overload.models) == (2_000, 200)


@pytest.mark.parametrize("seed", range(20))
def test_the_default_fault_phase_leaves_room_for_start_drain_and_teardown_in_15_minutes(seed):
    assert plan(seed).phase_s <= 900 - 90 - 120 - 60


@pytest.mark.parametrize("profile", [DEFAULT, QUICK])
@pytest.mark.parametrize("seed", range(20))
def test_outages_take_turns_and_instant_faults_avoid_kafka_outages(seed, profile):
    schedule = plan(seed, profile)
    outages = [f for f in schedule.faults if f.kind not in INSTANT | CONTROL]  # the control track: test_chaos_control
    for before, after in itertools.pairwise(outages):
        assert after.at_s >= before.at_s + before.duration_s + profile.allowance_s[before.kind]
    windows = kafka_windows(schedule, profile)
    for fault in schedule.faults:
        assert 0 <= fault.at_s <= schedule.phase_s
        if fault.kind in INSTANT:
            assert profile.lead_in_s <= fault.at_s <= schedule.phase_s - profile.tail_s
            assert not any(start <= fault.at_s <= end for start, end in windows)


@pytest.mark.parametrize("seed", range(20))
def test_the_router_restarts_inside_the_postgres_outage(seed):
    for fault in plan(seed).faults:
        if fault.kind is FaultKind.POSTGRES_DOWN:
            assert 0 < fault.offset_s < fault.duration_s


def test_kafka_outages_alternate_a_crash_and_a_clean_stop():
    details = {f.duration_s: f.detail for f in plan(3).faults if f.kind is FaultKind.KAFKA_DOWN}
    assert details == {5.0: "SIGKILL", 20.0: "SIGTERM", 60.0: "SIGKILL"}


def test_the_schedule_is_in_time_order():
    times = [f.at_s for f in plan(5).faults]
    assert times == sorted(times)


# ------------------------------------------------------------------ counting results


def steady(rid, has_deadline=False):
    return Sent(rid, "steady", has_deadline=has_deadline)


def ok(rid, topic="inference.results.v1", status="ok", reason=""):
    return Result(rid, status, topic, reason)


def test_one_result_per_request_counts_nothing_wrong():
    counts = count_results([steady("a"), steady("b")], [ok("a"), ok("b")], FORBIDDEN)
    assert (counts.sent, counts.missing, counts.duplicated, counts.failed) == (2, 0, 0, 0)
    assert counts.statuses == {"ok": 2}


def test_missing_duplicated_and_failed_are_counted_per_request():
    sent = [steady("a"), steady("b"), steady("c"), steady("d", has_deadline=True), Sent("o1", "overload")]
    results = [ok("a"), ok("a"), ok("c", status="failed"), ok("d", status="failed"), ok("o1", status="failed")]
    counts = count_results(sent, results, FORBIDDEN)
    assert counts.missing == 1  # b
    assert counts.duplicated == 1  # a
    assert counts.duplicated_by_kind == {"steady": 1}
    assert counts.duplicate_examples == ("a",)
    assert counts.failed == 2  # c and o1; d had a deadline


def test_a_result_on_a_reply_topic_answers_and_one_on_a_forbidden_topic_leaks():
    sent = [Sent("p-1", "forbidden_reply_topic"), Sent("p-2", "past_deadline", has_deadline=True)]
    results = [ok("p-1", topic="fleet.allocations.v1", status="rejected"), ok("p-2", topic="chaos.replies.a")]
    counts = count_results(sent, results, FORBIDDEN)
    assert counts.poison_answerable == 2
    assert counts.poison_answered == 1
    assert counts.poison_leaked == 1
    assert counts.poison_outcomes == {"forbidden_reply_topic": {"none": 1}, "past_deadline": {"ok": 1}}
    assert counts.missing == 0  # poison is not regular traffic


def test_unreadable_poison_must_be_dead_lettered_by_its_coordinates():
    sent = [Sent("", "unreadable_800kb", answerable=False, partition=3, offset=17), steady("a")]
    counts = count_results(sent, [ok("a")], FORBIDDEN, dead_letters=[(3, 17), (0, 1)])
    assert (counts.unreadable_sent, counts.unreadable_deadlettered, counts.poison_answerable) == (1, 1, 0)
    assert count_results(sent, [ok("a")], FORBIDDEN, dead_letters=[(3, 18)]).unreadable_deadlettered == 0


def test_results_for_requests_never_sent_are_reported():
    assert count_results([steady("a")], [ok("a"), ok("zzz")], FORBIDDEN).unexpected_results == 1


def test_rejection_reasons_are_grouped_without_their_numbers():
    sent = [steady("a"), steady("b")]
    results = [
        ok("a", status="rejected", reason="queue full: 2001 waiting"),
        ok("b", status="rejected", reason="queue full: 5 waiting"),
    ]
    assert count_results(sent, results, FORBIDDEN).rejection_reasons == {"queue full": 2}


# ------------------------------------------------------------------ stalls


def samples(committed, pending=5, start=0.0):
    return [Sample(start + i, c, pending) for i, c in enumerate(committed)]


def test_offsets_that_advance_are_no_stall():
    assert count_stalls(samples([0, 10, 20, 30]), []).seconds == 0


def test_offsets_standing_still_with_work_pending_are_a_stall():
    stalls = count_stalls(samples([0, 10, 10, 10, 10, 20]), [])
    assert stalls.seconds == 3
    assert stalls.windows == ((1.0, 4.0),)
    assert stalls.watched_s == 5


def test_offsets_standing_still_with_nothing_owed_are_no_stall():
    assert count_stalls(samples([10, 10, 10], pending=0), []).seconds == 0


def test_outages_and_their_grace_are_not_counted():
    still = samples([10] * 100)  # t = 0..99, never advancing
    stalls = count_stalls(still, [(10.0, 20.0)], grace_s=30.0)
    # excluded: intervals touching 10..50; counted: 0..10 and 50..99
    assert stalls.seconds == 10 + 49
    assert stalls.windows == ((0.0, 10.0), (50.0, 99.0))


def test_unreadable_samples_are_skipped():
    seq = [Sample(0, 10, 5), Sample(1, None, 5), Sample(2, 10, 5), Sample(3, 10, 5)]
    assert count_stalls(seq, []).seconds == 1


# ------------------------------------------------------------------ verdict


def test_the_verdict_needs_every_count_at_zero_and_every_poison_handled():
    good = count_results([steady("a"), Sent("p", "unknown_fields")], [ok("a"), ok("p", status="rejected")], FORBIDDEN)
    calm = count_stalls(samples([0, 1, 2]), [])
    assert passed(good, calm)
    assert not passed(good, count_stalls(samples([0, 0, 0]), []))
    unanswered = count_results([steady("a"), Sent("p", "unknown_fields")], [ok("a")], FORBIDDEN)
    assert not passed(unanswered, calm)
    lost_letter = count_results([Sent("", "unreadable_800kb", answerable=False, partition=0, offset=1)], [], FORBIDDEN)
    assert not passed(lost_letter, calm)
