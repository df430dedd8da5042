"""Webhook fan-out: every task ends with a signed POST to a local receiver (``--webhook-url``).

The app must allow the receiver (``APP_WEBHOOK_ALLOW=127.0.0.1``); ``make bench``
starts both. The accept is gated; the deliveries are measured from the event log.
"""

from __future__ import annotations

from benchmarks import _calls
from benchmarks._calls import Call
from benchmarks._users import OpenModelUser


class WebhookFanoutUser(OpenModelUser):
    gated = True

    def call(self) -> Call:
        return _calls.process_data(self.options, "background", webhook_url=self.options.webhook_url)
