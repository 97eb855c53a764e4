"""Experiments: single runs with checkpoints, multi-seed comparisons, statistics and reports."""
