"""Synthetic data set writers, one module per file format."""
