"""Fit: the one training loop, its callbacks, optimizers and schedules."""
