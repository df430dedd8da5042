"""Exercises: one or more per lesson, each a stub to complete, its checks, hints and a solution."""
