"""Simulated meters and buses for tests, demos and benchmarks."""
