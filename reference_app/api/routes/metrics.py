"""``GET /metrics``: Prometheus's text format, for a scraper that holds ``APP_METRICS_TOKEN``.

Mounted only when the token is set. The API keys do not open it, and it names no
organisation or task: its labels are routes, kinds, outcomes and statuses.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reference_app.api.deps import MetricsDep, SettingsDep, StoreDep, WorkerDep
from reference_app.metrics import CONTENT_TYPE

__all__ = ["router"]

router = APIRouter(tags=["metrics"])

_token = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="APP_METRICS_TOKEN: `Authorization: Bearer <token>`; an API key does not do.",
)
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text format 0.0.4 (the README lists every metric)",
        "content": {CONTENT_TYPE: {}},
    },
    401: {"description": "Missing or wrong metrics token"},
}


async def require_metrics_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_token)],
) -> None:
    """401 unless the request presents ``APP_METRICS_TOKEN`` as its Bearer token."""
    expected = settings.metrics_token
    if expected is None:  # not mounted then; should it be, it still serves nobody
        raise HTTPException(status_code=404, detail="Not Found")
    presented = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(presented, expected.get_secret_value().encode()):
        raise HTTPException(
            status_code=401,
            detail="Missing or invalid metrics token: send `Authorization: Bearer "
            "<APP_METRICS_TOKEN>` (an API key does not open /metrics).",
            headers={"WWW-Authenticate": "Bearer"},
        )


@router.get(
    "/metrics",
    response_class=Response,
    responses=_RESPONSES,
    dependencies=[Depends(require_metrics_token)],
)
async def metrics(metrics: MetricsDep, store: StoreDep, worker: WorkerDep) -> Response:
    """Counters and histograms of this process (of every process, under
    ``PROMETHEUS_MULTIPROC_DIR``), and the queue's gauges read from the database."""
    return Response(await metrics.render(store, worker), media_type=CONTENT_TYPE)
