"""Test support: small stand-ins that exercise the shared plumbing end to end."""
