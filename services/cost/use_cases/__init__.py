"""The cost service's use cases: record each event, run the cycle (reports, recommendations), operator actions."""
