"""Benchmarks: each module prints its figures (median, p99, ratios); none asserts a timing."""
