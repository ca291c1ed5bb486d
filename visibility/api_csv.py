"""CSV export of visibility figures: one row per run × provider × brand with numerators and denominators,
so a spreadsheet can add runs together instead of averaging percentages."""

from __future__ import annotations

import csv
import io
import json

from django.http import HttpResponse
from rest_framework.renderers import BaseRenderer

from visibility.metrics import brand_metrics
from visibility.selectors import SetCounts, brand_counts

CSV_COLUMNS = [
    "run",
    "at",
    "provider",
    "brand_id",
    "brand",
    "is_own",
    "analysis_version",
    "answers",
    "failed",
    "mentioned",
    "visibility",
    "visibility_low",
    "visibility_high",
    "mentioned_all_brands",
    "share_of_voice",
    "rank_sum",
    "avg_rank",
    "cited",
    "citation_rate",
]
# OWASP "CSV injection": a cell starting with one of these is a formula to a spreadsheet program.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def visibility_csv_rows(
    *, run_id: str, at: str, provider: str, analysis_version: int, brands, counts: SetCounts
) -> list[list]:
    voices = sum(mentioned for mentioned, _, _ in counts.brands.values())
    figures = brand_metrics(answers=counts.answers, brands=brand_counts(brands, counts))
    rows = []
    for brand, figure in zip(brands, figures, strict=True):
        _, rank_sum, _ = counts.brands.get(brand.id, (0, 0, 0))
        rows.append(
            [
                run_id,
                at,
                provider,
                brand.id,
                brand.name,
                brand.is_own,
                analysis_version,
                counts.answers,
                counts.failed,
                figure["mentioned"],
                figure["visibility"],
                figure["visibility_low"],
                figure["visibility_high"],
                voices,
                figure["share_of_voice"],
                rank_sum,
                figure["avg_rank"],
                figure["cited"],
                figure["citation_rate"],
            ]
        )
    return rows


def csv_response(rows: list[list], *, filename: str) -> HttpResponse:
    buffer = io.StringIO()
    buffer.write("\ufeff")  # lets spreadsheet programs detect UTF-8
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    writer.writerows([csv_cell(cell) for cell in row] for row in rows)
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class VisibilityCsvRenderer(BaseRenderer):
    """Lets `?format=csv` select the export; the export itself is built by `csv_response`."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Only errors reach here: render them as their JSON text.
        return json.dumps(data).encode() if data is not None else b""
