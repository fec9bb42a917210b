"""The monitor: metrics collection, threshold alerts and scaling signals."""
