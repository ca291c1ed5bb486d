"""GET /metrics: Prometheus text computed at scrape time from shared state, the same from any process.

Nothing here counts in this process's memory: queue depths and consumers come from Redis,
finished-item counters and histograms from the Redis hash the progress scripts keep
(agent/metrics.py), running items from one indexed query. No table is counted per scrape.
"""
from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from agent.metrics import STATUSES
from agent.queue_ops import queue_figures, queue_overview_list


class ClusterCollector:
    """Collects the contract's metrics (DESIGN.md, Queue operations) on every scrape."""

    def collect(self):
        figures = queue_figures(minutes=0)
        overviews = queue_overview_list(figures)
        families = {
            "waiting": GaugeMetricFamily("oneglanse_queue_waiting", "Items waiting on the provider queue.", labels=["provider"]),
            "running": GaugeMetricFamily("oneglanse_queue_running", "Items being asked right now.", labels=["provider"]),
            "paused": GaugeMetricFamily("oneglanse_queue_paused", "1 while the provider queue is paused.", labels=["provider"]),
            "consumers": GaugeMetricFamily("oneglanse_consumers", "Consumer processes alive (heartbeat), every host.",
                                           labels=["provider"]),
        }
        for overview in overviews:
            families["waiting"].add_metric([overview.provider], overview.waiting)
            families["running"].add_metric([overview.provider], overview.running)
            families["paused"].add_metric([overview.provider], 1 if overview.paused else 0)
            families["consumers"].add_metric([overview.provider], overview.consumers)
        yield from families.values()

        finished = CounterMetricFamily("oneglanse_items_finished", "Items finished, by provider and outcome.",
                                       labels=["provider", "status"])
        duration = HistogramMetricFamily("oneglanse_item_duration_seconds", "Provider call time of ok items.",
                                         labels=["provider"])
        for provider, totals in figures.totals.items():
            for status in STATUSES:
                finished.add_metric([provider, status], totals.finished[status])
            duration.add_metric([provider], buckets=totals.cumulative_buckets(), sum_value=totals.seconds)
        yield finished
        yield duration


_registry = CollectorRegistry(auto_describe=False)
_registry.register(ClusterCollector())


def _authorized(request: HttpRequest) -> bool:
    token = settings.AGENT_METRICS_TOKEN
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        response = HttpResponse("A valid 'Authorization: Bearer <AGENT_METRICS_TOKEN>' header is required.\n",
                                status=401, content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)
