"""`make chaos`: kills, rebalances, outages, poison records and overload against the request path."""
