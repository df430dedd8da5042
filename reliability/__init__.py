"""Fault, input and soak scenarios that prove no accepted task is lost.

Each scenario is a plain function that starts real processes on 127.0.0.1 and returns an
:class:`~reliability._outcome.Outcome`. The tests under ``tests/reliability/`` run the bounded
variants and assert on the outcome; ``python -m reliability`` (``make reliability``) runs the
long variants and prints the report table.
"""
