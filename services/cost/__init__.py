"""The cost service: pricing, recommendations and regional plans."""
