"""Pages of a run's answers that cost the same at the first page and the five-thousandth.

A run can hold 100,000 answers and more. `OFFSET` pagination reads and throws away every row
before the page, so page 5,000 costs 5,000 pages. These pages are keyset pages instead, built on
DRF's `CursorPagination` (its opaque `cursor=` links and browsable controls): the cursor holds
the page edge's full sort key (prompt, provider, id), which is unique, and the next page is
`WHERE (prompt, provider, id) > edge ORDER BY prompt, provider, id LIMIT n`, read straight off
the index in that order. (DRF's own version keys on the first ordering field alone plus an
offset, which skips or repeats answers when paging backwards across a prompt's answers.)
The body keeps the list shape of every endpoint: `{"count", "next", "previous", "results"}`.

- No `page` parameter (or `?cursor=...`): keyset pages; `next`/`previous` carry `cursor=`.
- `?page=N`: the numbered pages of before, still served for small runs and old clients; they
  cost an `OFFSET`, so deep pages of a huge run are slow.

`count` comes from the run itself (its `expected_responses`, exact, no query) when no filter
is given, and from one indexed `COUNT` within the run when one is.
"""
from __future__ import annotations

from collections import OrderedDict

from django.core.paginator import Paginator
from django.db import connection
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from rest_framework import pagination
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from oneglanse.api import PageNumberPagination


class RunItemsPaginator(Paginator):
    """Numbered pages of a run's items that neither count nor carry the rows they skip.

    `count`, when the caller knows it (a run's `expected_responses`, or its per-provider counts),
    replaces the `COUNT(*)` over the run. A page first takes its ids from the answer-order index
    alone (`OFFSET` over index entries, no table rows), then reads just those rows: page 2,000 of a
    100,000-item run reads 50 rows, not 100,000.
    """

    def __init__(self, object_list, per_page, *, count: int | None = None, **kwargs) -> None:
        super().__init__(object_list, per_page, **kwargs)
        if count is not None:
            self.count = count  # Paginator.count is a cached property: this is its value

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        ids = list(self.object_list.values_list("id", flat=True)[bottom:top])
        return self._get_page(list(self.object_list.filter(id__in=ids)) if ids else [], number, self)


class _NumberedAnswers(PageNumberPagination):
    """`?page=N` of the answers API on RunItemsPaginator, with the view's cheap count."""

    count = None

    def django_paginator_class(self, object_list, per_page):
        return RunItemsPaginator(object_list, per_page, count=self.count)


class AnswersPagination(pagination.CursorPagination):
    ordering = ("prompt_id", "provider", "id")  # the run page's answer order; unique thanks to the id
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000

    def paginate_queryset(self, queryset, request, view=None):
        self.numbered = None
        counter = getattr(view, "answers_count", None)
        self.count = counter(queryset) if counter else queryset.count()
        if "page" in request.query_params and "cursor" not in request.query_params:
            self.numbered = _NumberedAnswers()
            self.numbered.count = self.count
            page = self.numbered.paginate_queryset(queryset, request, view)
            self.display_page_controls = self.numbered.display_page_controls
            return page
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        self.cursor = self.decode_cursor(request)
        edge = _edge_parse(self.cursor.position) if self.cursor and self.cursor.position else None
        backwards = bool(self.cursor and self.cursor.reverse)
        order = [f"-{f}" for f in self.ordering] if backwards else list(self.ordering)
        queryset = queryset.order_by(*order)
        if edge is not None:
            queryset = queryset.filter(_beyond(edge, backwards=backwards))
        rows = list(queryset[: self.page_size + 1])
        self.page = rows[: self.page_size]
        more = len(rows) > self.page_size
        if backwards:
            self.page.reverse()
            self.has_next, self.has_previous = edge is not None, more
        else:
            self.has_next, self.has_previous = more, edge is not None
        self.edge = edge
        self.display_page_controls = self.has_next or self.has_previous
        return self.page

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        edge = _edge_of(self.page[-1]) if self.page else self.edge
        return self.encode_cursor(pagination.Cursor(offset=0, reverse=False, position=edge))

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        edge = _edge_of(self.page[0]) if self.page else self.edge
        return self.encode_cursor(pagination.Cursor(offset=0, reverse=True, position=edge))

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


def _edge_of(item) -> str:
    return f"{item.prompt_id}:{item.provider}:{item.id}"


def _edge_parse(position: str) -> tuple[int, str, int]:
    try:
        prompt_id, provider, item_id = position.split(":")
        return int(prompt_id), provider, int(item_id)
    except ValueError:
        raise NotFound(AnswersPagination.invalid_cursor_message) from None


def _beyond(edge: tuple[int, str, int], *, backwards: bool) -> RawSQL:
    """(prompt, provider, id) after the edge (before it, backwards), as one row-value comparison:
    PostgreSQL (and SQLite) read it as a single range of the answer-order index. The same test
    spelled with OR lets PostgreSQL split it into bitmap scans that read a whole provider's
    answers when the edge is early in the order."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in ("prompt_id", "provider", "id"))
    return RawSQL(f"({columns}) {'<' if backwards else '>'} (%s, %s, %s)", edge, output_field=BooleanField())
