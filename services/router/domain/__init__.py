"""Pure domain logic: no I/O, no clock, no randomness (they are passed in)."""
