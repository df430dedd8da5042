"""The reference app: durable, event-sourced background work on FastAPI's BackgroundTasks.

The ASGI app is ``reference_app.main:app``.
"""

__all__: list[str] = []
