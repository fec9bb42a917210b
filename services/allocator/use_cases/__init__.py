"""The allocator's use cases: plan a scaling action, carry it out, record prices."""
