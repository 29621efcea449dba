"""Benchmarks: `make bench` (python -m benchmarks). Figures are medians of several runs and
ratios against a floor or a peer measured in the same run, never timed assertions."""
