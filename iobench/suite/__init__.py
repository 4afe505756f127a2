"""Suites: steps that run registered commands in-process, criteria that judge their results."""
