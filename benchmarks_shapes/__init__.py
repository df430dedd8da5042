"""LoadTestShape classes for the suite, kept out of ``benchmarks/`` on purpose.

Locust applies the first shape it finds in the files it loads, silently, to
every run. So ``locust -f benchmarks`` loads none, and a run that wants one
names it: ``locust -f benchmarks/inline_vs_background.py,benchmarks_shapes/steps.py``.
"""
