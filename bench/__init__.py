"""Benchmarks (not timed tests): each script prints one JSON document; see docs/benchmarks.md."""
