"""The Locust benchmark suite: ``locust -f benchmarks`` (web UI) and ``python -m benchmarks``.

Every ``.py`` file here that does not start with ``_`` is a locustfile with one
scenario; Locust loads them all. Helpers start with ``_`` so Locust never loads
them as locustfiles (which would register their event listeners twice).
LoadTestShape classes live in ``benchmarks_shapes/`` and are added with ``-f``
when wanted, because Locust silently applies the first shape it finds.
"""
