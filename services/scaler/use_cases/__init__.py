"""The scaler's use cases: record what the other services report, cold starts, the evaluation round, compaction."""
