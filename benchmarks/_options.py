"""The suite's own Locust options (shown in the web UI unless marked otherwise).

Set them on the command line (``--io-ms 300``), in ``[tool.locust]`` of
pyproject.toml (``io-ms = 300``), or as ``LOCUST_IO_MS`` in the environment.
"""

from __future__ import annotations

from typing import Any

from locust import events

from benchmarks._hooks import listen

__all__ = ["DEFAULT_API_KEY", "DEFAULT_HOST", "DEFAULT_WEBHOOK_URL"]

DEFAULT_HOST = "http://127.0.0.1:8000"
DEFAULT_API_KEY = "demo-key-org-a"  # the reference app's demo key (reference_app.core.config)
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8090/hook"


def _add_options(parser: Any) -> None:
    # The parser's add_argument, not a group's: only the parser knows include_in_web_ui.
    add = parser.add_argument
    add("--api-key", default=DEFAULT_API_KEY, help="Bearer key for the reference app")
    add(
        "--p95-budget-ms",
        type=float,
        default=200.0,
        help="Gate: a gated endpoint fails at this p95",
    )
    add(
        "--gate-max-failures",
        type=int,
        default=0,
        help="Gate: failed requests allowed per endpoint",
    )
    add(
        "--user-rate",
        type=float,
        default=0.0,
        help="Closed loop: at most this many requests per second per user (0: back to back)",
    )
    add(
        "--arrival-rate",
        type=float,
        default=10.0,
        help="Open model: requests per second per user, sent whatever the server does",
    )
    add(
        "--arrivals",
        choices=["poisson", "uniform"],
        default="poisson",
        help="Open model: random gaps (Poisson, as independent users) or evenly spaced",
    )
    add("--arrival-seed", type=int, default=1, help="Open model: seed of the random gaps")
    add(
        "--arrivals-for",
        type=float,
        default=0.0,
        help="Open model: stop arriving after this many seconds (0: when the test stops)",
    )
    add(
        "--open-grace",
        type=float,
        default=3.0,
        help="Open model: seconds to wait for answers after the last arrival; later is a failure",
    )
    add("--io-ms", type=int, default=300, help="process-data: awaited I/O per task")
    add("--cpu-ms", type=int, default=0, help="process-data: CPU in the process pool")
    add("--work-ms", type=int, default=200, help="Lesson 08 lab: work per task")
    add("--webhook-url", default=DEFAULT_WEBHOOK_URL, help="Webhook fan-out: the receiver's URL")
    add("--requests-csv", default="", include_in_web_ui=False, help="Write every request here")
    add("--run-json", default="", include_in_web_ui=False, help="Write the gate and CPU use here")


listen(events.init_command_line_parser, _add_options)
