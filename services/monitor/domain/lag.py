"""Consumer lag: how far a group's committed offsets trail the partitions' ends."""

from __future__ import annotations

from collections.abc import Hashable, Mapping


def group_lag(committed: Mapping[Hashable, int], ends: Mapping[Hashable, int]) -> int:
    """Messages not yet consumed, summed over the partitions the group has committed on.

    A partition without a commit is left out: the group has not started on it, and its
    backlog depends on the reset policy rather than on how the consumer keeps up.
    """
    return sum(max(0, ends[tp] - offset) for tp, offset in committed.items() if tp in ends and offset >= 0)
