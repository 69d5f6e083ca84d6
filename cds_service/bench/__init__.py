"""Benchmarks: `cds-service bench` (see README, Performance)."""
