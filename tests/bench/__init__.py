"""Benchmarks: a deterministic list generator and the measured prepare stage (`make bench`)."""
