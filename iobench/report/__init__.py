"""Renderers: terminal (Rich tables, progress), CSV, compare."""
