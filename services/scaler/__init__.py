"""The scaler: demand history, forecasts, scaling policies and model tiers."""
