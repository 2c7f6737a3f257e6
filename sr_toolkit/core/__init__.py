"""Foundations every other part builds on: errors, registry and discovery, type checks, atomic writes,
image files, resizing, weights files, threads and precision."""
