"""Evaluation: metrics, scoring models against baselines, reports."""
