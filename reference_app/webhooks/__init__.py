"""Webhook deliveries: signing, the SSRF guard, the shared HTTP client, delivery."""

__all__: list[str] = []
