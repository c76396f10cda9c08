"""The admin-api's /metrics: the process's own metrics, unauthenticated on its internal port."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def test_metrics_served_without_a_key(admin_service):
    async with httpx.AsyncClient(base_url=admin_service.base_url) as client:
        first = await client.get("/metrics")
        await client.get("/health")
        second = await client.get("/metrics")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(second.text)}
    assert {"process_resident_memory_bytes", "process_cpu_seconds"} <= names
