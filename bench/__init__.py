"""Benchmarks for ratekeeper; ``python -m bench`` runs the side-by-side traffic simulator."""
