"""Pages of a run's answers that cost the same at the first page and the five-thousandth.

A run can hold 100,000 answers and more. `OFFSET` pagination reads and throws away every row
before the page, so page 5,000 costs 5,000 pages. These pages are keyset pages instead (DRF's
`CursorPagination`): the `next` link carries the position of the page's last answer, and the
next page is `WHERE prompt > position ORDER BY prompt, provider, id LIMIT n`, read straight from
the index that has that order. The body keeps the list shape every endpoint has:
`{"count", "next", "previous", "results"}`.

- No `page` parameter (or `?cursor=...`): keyset pages; `next`/`previous` carry `cursor=`.
- `?page=N`: the numbered pages of before, still served for small runs and old clients; they
  cost an `OFFSET`, so deep pages of a huge run are slow.

`count` comes from the run itself (its `expected_responses`, exact, no query) when no filter
is given, and from one indexed `COUNT` within the run when one is.
"""
from __future__ import annotations

from collections import OrderedDict

from rest_framework import pagination
from rest_framework.response import Response

from agent.api_pagination import PageNumberPagination


class AnswersPagination(pagination.CursorPagination):
    ordering = ("prompt_id", "provider", "id")  # the answer order of the run page; prompt first, for the index
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000
    # Answers of one prompt share a position (one per provider and sample: at most 4 x 10), so a
    # cursor's offset within one position is small; DRF refuses larger ones.
    offset_cutoff = 1000

    def paginate_queryset(self, queryset, request, view=None):
        self.numbered = None
        if "page" in request.query_params and "cursor" not in request.query_params:
            self.numbered = PageNumberPagination()
            page = self.numbered.paginate_queryset(queryset, request, view)
            self.display_page_controls = self.numbered.display_page_controls
            return page
        counter = getattr(view, "answers_count", None)
        self.count = counter(queryset) if counter else queryset.count()
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data) -> Response:
        if self.numbered is not None:
            return self.numbered.get_paginated_response(data)
        return Response(OrderedDict([
            ("count", self.count), ("next", self.get_next_link()), ("previous", self.get_previous_link()), ("results", data),
        ]))

    def get_paginated_response_schema(self, schema: dict) -> dict:
        described = super().get_paginated_response_schema(schema)
        described["properties"] = {"count": {"type": "integer", "example": 123}, **described["properties"]}
        described["required"] = ["count", *described.get("required", [])]
        return described

    def get_schema_operation_parameters(self, view) -> list[dict]:
        numbered = PageNumberPagination().get_schema_operation_parameters(view)
        cursor = super().get_schema_operation_parameters(view)
        seen = {p["name"] for p in cursor}
        return cursor + [p for p in numbered if p["name"] not in seen]

    def to_html(self) -> str:
        return self.numbered.to_html() if self.numbered is not None else super().to_html()
