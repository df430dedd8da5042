"""StepsShape: hold ``--steps`` user counts for ``--step-seconds`` each, then stop.

With open-model users, each user arrives ``--arrival-rate`` times a second, so
``--steps 1,2,4,8 --arrival-rate 25`` is a ladder of 25, 50, 100 and 200
requests per second. With closed-loop users it is a ladder of users.

Give open-model users ``--arrivals-for`` the ladder's length: the shape then
holds the last step ``--open-grace`` seconds more, so that the answers to the
last arrivals are counted instead of cut off when the test stops.
"""

from __future__ import annotations

import time
from typing import Any

from locust import LoadTestShape, events

SPAWN_RATE = 1000  # all of a step's users at once


def _add_options(parser: Any) -> None:
    parser.add_argument("--steps", default="1,2,4,8", help="StepsShape: users at each step")
    parser.add_argument("--step-seconds", type=float, default=10.0, help="StepsShape: step length")


_hook: Any = events.init_command_line_parser  # add_listener is not annotated
_hook.add_listener(_add_options)


def parse_steps(text: str) -> list[int]:
    steps = [int(part) for part in text.split(",") if part.strip()]
    if not steps or min(steps) < 1:
        raise ValueError(f"--steps needs positive user counts, got {text!r}")
    return steps


class StepsShape(LoadTestShape):
    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        steps = parse_steps(options.steps if options else "1,2,4,8")
        seconds = options.step_seconds if options else 10.0
        hold = (
            getattr(options, "open_grace", 0.0) + 1.0 if options and options.arrivals_for else 0.0
        )
        elapsed = time.perf_counter() - self.start_time  # get_run_time(), typed
        if elapsed >= len(steps) * seconds + hold:
            return None
        return steps[min(int(elapsed // seconds), len(steps) - 1)], SPAWN_RATE
