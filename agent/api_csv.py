"""CSV export of a group's answers, streamed so a group of thousands of items costs little memory."""
from __future__ import annotations

import csv
import json

from django.http import StreamingHttpResponse
from rest_framework.renderers import BaseRenderer

from oneglanse.spreadsheet import spreadsheet_safe_row

CSV_COLUMNS = [
    "item_id", "provider", "prompt_id", "prompt_text", "status", "text", "sources", "source_urls", "cited_urls",
    "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms", "attempts", "backend", "model", "error",
]


class _Echo:
    def write(self, value: str) -> str:
        return value


class AnswersCsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Only errors reach here (answers stream through `streaming_response`): render them as text.
        return json.dumps(data).encode() if data is not None else b""

    @staticmethod
    def streaming_response(*, group, items) -> StreamingHttpResponse:
        writer = csv.writer(_Echo())

        def rows():
            yield "\ufeff"  # lets spreadsheet programs detect UTF-8
            yield writer.writerow(CSV_COLUMNS)
            for item in items.iterator(chunk_size=500):
                usage = item.usage or {}
                yield writer.writerow(spreadsheet_safe_row([
                    item.id, item.provider, item.prompt_id, item.prompt_text, item.status, item.text,
                    json.dumps(item.sources, ensure_ascii=False), " ".join(s.get("url", "") for s in item.sources or []),
                    " ".join(s.get("url", "") for s in item.sources or [] if s.get("cited")),
                    usage.get("prompt_tokens", ""), usage.get("completion_tokens", ""), usage.get("total_tokens", ""),
                    item.latency_ms if item.latency_ms is not None else "", item.attempts, item.backend, item.model,
                    item.error,
                ]))

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="oneglanse-{group.id}-answers.csv"'
        return response
