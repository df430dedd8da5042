"""Prometheus metrics: the recorder moved by hooks, the database gauges, and their exposition."""

from reference_app.metrics.exposition import CONTENT_TYPE, Metrics
from reference_app.metrics.middleware import AcceptTimer

__all__ = ["CONTENT_TYPE", "AcceptTimer", "Metrics"]
