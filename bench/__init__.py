"""Benchmark suite of the AI Interaction Module: `make bench` (see BENCHMARKS.md for the method)."""
