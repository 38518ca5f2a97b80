"""Drawings and a browser driver shared by the tests and the benchmarks (never imported by the service)."""
