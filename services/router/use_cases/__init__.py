"""The router's use cases: allocation events recorded in its registry tables."""
