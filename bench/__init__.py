"""Benchmarks and the soak: `make bench`, `make bench-workers`, `make bench-redis`, `make soak` (BENCHMARKS.md)."""
