"""`manage.py bench_fixture`: a year of answered runs in one workspace, for measuring the service at size.

The default builds what a busy installation holds after a year: one workspace with 700 prompts
asked of 4 providers every day for 365 days (1,022,000 answers with sources), one run of
100,000 answers in a workspace of its own (exports, deep pages), and optionally filler
workspaces of another user (other tenants) so the tables are as big as a multi-tenant
installation's; `--filler-only` adds them to a database that already holds the year. Rows are
written with `INSERT ... SELECT` (one statement per table and workspace; on PostgreSQL the filler's
prompts and runs come from `generate_series`), not through model instances: a million rows take
about a minute on PostgreSQL instead of an hour, ten million about 15 minutes. Every row is a plausible
finished answer (backend "simulated"), so pages, the API, exports and the admin read it as
they read real data.
"""
from __future__ import annotations

import time
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, models, transaction
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone

from agent.models import JobGroup, JobGroupProvider, JobItem
from prompts.models import Prompt
from workspaces.models import Membership, Workspace

PROVIDERS = ("chatgpt", "perplexity", "gemini", "claude")
_BRANDS = ("HubSpot", "Salesforce", "Pipedrive", "Zoho CRM", "Monday", "Freshsales", "Close", "Attio")
_SITES = ("www.g2.com", "www.capterra.com", "en.wikipedia.org", "www.techradar.com", "www.reddit.com", "hubspot.com",
          "blog.hubspot.com", "www.salesforce.com", "www.pipedrive.com", "www.zoho.com")
# Answers cycle through this many source lists (1-3 sources each) and texts, picked by prompt id.
_VARIANTS = 16


def _sources(variant: int) -> list[dict]:
    picks = [_SITES[(variant + k * 3) % len(_SITES)] for k in range(1 + variant % 3)]
    return [{"url": f"https://{site}/crm-{variant}", "title": f"{site} on CRM tools ({variant})",
             "domain": site.removeprefix("www."), "cited": True} for site in picks]


def _text(variant: int) -> str:
    named = [_BRANDS[(variant + k) % len(_BRANDS)] for k in range(2 + variant % 4)]
    return (f"[Simulated answer] Teams of this size usually shortlist {', '.join(named)}. "
            f"{named[0]} is strongest on integrations, {named[-1]} on price; reviewers compare support and onboarding "
            "before a two-week trial. ")


def _progress(*, prompts: int, providers: tuple[str, ...]) -> dict:
    """The final mirror of a completed run whose every item was answered (the contract's shape)."""
    return {
        "status": "completed", "updateId": prompts * len(providers) + len(providers) * 2,
        "providers": dict.fromkeys(providers, "completed"),
        "results": dict.fromkeys(providers, prompts), "failed": dict.fromkeys(providers, 0),
        "stats": {"totalPrompts": prompts, "expectedResponses": prompts * len(providers),
                  "actualResponses": prompts * len(providers), "failedResponses": 0, "cancelledResponses": 0},
    }


class Command(BaseCommand):
    help = "Build a year of answered runs (1,022,000 answers by default) for measuring the service at size."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="bench", help="owner of every workspace built (created if missing)")
        parser.add_argument("--days", type=int, default=365, help="daily runs in the main workspace")
        parser.add_argument("--prompts", type=int, default=700, help="prompts of the main workspace")
        parser.add_argument("--big-run-answers", type=int, default=100_000,
                            help="answers of the one big run (its own workspace; 0 = none)")
        parser.add_argument("--filler-workspaces", type=int, default=0, help="extra workspaces, each with its own runs")
        parser.add_argument("--filler-runs", type=int, default=50, help="runs per filler workspace")
        parser.add_argument("--filler-prompts", type=int, default=250, help="prompts per filler workspace")
        parser.add_argument("--filler-only", action="store_true",
                            help="build only the filler workspaces (add other tenants to a database that holds the year)")
        parser.add_argument("--mentions", action="store_true",
                            help="add 8 brands to the main workspace and analyse its answers with the real analysis "
                                 "(visibility): exact but slow, about 3 ms of wall time per answer here")
        parser.add_argument("--mentions-bulk", action="store_true",
                            help="add the 8 brands to the main workspace and the big run's, store findings on their "
                                 "answers directly (pseudo-random mentions, ranks and citations drawn from the ids, not "
                                 "the real analysis), then each run's figures with the real aggregate service")
        parser.add_argument("--analyze", action="store_true", help="run ANALYZE afterwards (PostgreSQL planner statistics)")

    def handle(self, *args, **options) -> None:
        if options["days"] < 1 or options["prompts"] < 1:
            raise CommandError("--days and --prompts must be at least 1.")
        started = time.monotonic()
        user, _ = get_user_model().objects.get_or_create(username=options["username"])
        now = timezone.now().replace(microsecond=0)
        if options["filler_only"]:
            self._fillers(options=options, now=now)
            self._analyze(options)
            self.stdout.write(self.style.SUCCESS(f"done in {time.monotonic() - started:.1f} s"))
            return
        main = self._workspace(user=user, name=f"Year of runs ({options['days']} days)", prompts=options["prompts"])
        answers = self._runs(workspace=main, user=user, days=options["days"], now=now)
        self.stdout.write(f"workspace {main.id}: {options['days']} runs, {answers} answers")
        if options["mentions"]:
            self._mentions(workspace=main)
        elif options["mentions_bulk"]:
            self._mentions_bulk(workspace=main)
        if options["big_run_answers"]:
            prompts = -(-options["big_run_answers"] // len(PROVIDERS))
            big = self._workspace(user=user, name=f"One big run ({prompts * len(PROVIDERS)} answers)", prompts=prompts,
                                  active=False)  # more prompts than a workspace may keep active
            answers = self._runs(workspace=big, user=user, days=1, now=now)
            run = JobGroup.objects.filter(workspace=big).values_list("id", flat=True).get()
            self.stdout.write(f"workspace {big.id}: big run {run}, {answers} answers")
            if options["mentions_bulk"]:
                self._mentions_bulk(workspace=big)
        self._fillers(options=options, now=now)
        self._analyze(options)
        self.stdout.write(self.style.SUCCESS(f"done in {time.monotonic() - started:.1f} s"))

    def _mentions(self, *, workspace: Workspace) -> None:
        """The answer texts name these brands; the real analysis (visibility) records every mention and citation."""
        from visibility.services.analysis import workspace_reanalyse
        from visibility.services.brands import brand_create

        started = time.monotonic()
        for index, name in enumerate(_BRANDS):
            slug = name.split()[0].lower()
            brand_create(workspace=workspace, name=name, domains=[f"{slug}.com"], is_own=index == 0,
                         match_case=name == "Monday")
        done = workspace_reanalyse(workspace_id=workspace.id)
        self.stdout.write(f"{len(_BRANDS)} brands; {done.answers} answers analysed in {time.monotonic() - started:.1f} s")

    def _workspace(self, *, user, name: str, prompts: int, active: bool = True) -> Workspace:
        with transaction.atomic():
            workspace = Workspace.objects.create(name=name, enabled_providers=list(PROVIDERS))
            Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.OWNER)
            Prompt.objects.bulk_create(
                [Prompt(workspace=workspace, text=f"Which CRM suits a team of {n % 200 + 2} in sector {n}?", is_active=active)
                 for n in range(prompts)],
                batch_size=5000,
            )
        return workspace

    def _runs(self, *, workspace: Workspace, user, days: int, now) -> int:
        """`days` finished daily runs of every prompt of the workspace on every provider; returns answers written."""
        prompts = Prompt.objects.filter(workspace=workspace).count()
        groups = [
            JobGroup(id=uuid.uuid4(), workspace=workspace, triggered_by=user, status=JobGroup.Status.COMPLETED,
                     providers=list(PROVIDERS), total_prompts=prompts, expected_responses=prompts * len(PROVIDERS),
                     progress=_progress(prompts=prompts, providers=PROVIDERS))
            for _ in range(days)
        ]
        with transaction.atomic():
            JobGroup.objects.bulk_create(groups, batch_size=500)
            # created_at is auto_now_add: spread the runs over the past days with one UPDATE each day.
            for day, group in enumerate(groups):
                at = now - timedelta(days=days - 1 - day)
                JobGroup.objects.filter(id=group.id).update(created_at=at, finished_at=at + timedelta(minutes=12))
            JobGroupProvider.objects.bulk_create(
                [JobGroupProvider(group=group, provider=p, status=JobGroupProvider.Status.COMPLETED)
                 for group in groups for p in PROVIDERS],
                batch_size=2000,
            )
            return self._items_insert(workspace=workspace, group_ids=[g.id for g in groups])

    def _items_insert(self, *, workspace: Workspace, group_ids: list) -> int:
        """Every (run, prompt, provider) of these runs as an answered item, in one INSERT ... SELECT per 50 runs."""
        item, group, prompt = JobItem._meta, JobGroup._meta, Prompt._meta
        quote = connection.ops.quote_name
        sources_field, usage_field = item.get_field("sources"), item.get_field("usage")
        # UNION ALL rather than VALUES ... AS v(n, ...): SQLite cannot name a VALUES list's columns.
        variants = " UNION ALL ".join(["SELECT %s AS n, %s AS body, %s AS sources"] * _VARIANTS)
        variant_params: list = []
        for v in range(_VARIANTS):
            variant_params += [v, _text(v), sources_field.get_db_prep_save(_sources(v), connection)]
        providers = " UNION ALL ".join(f"SELECT %s AS provider, {n} AS n" for n in range(len(PROVIDERS)))
        usage = usage_field.get_db_prep_save({"prompt_tokens": 14, "completion_tokens": 61, "total_tokens": 75}, connection)
        columns = ["group_id", "provider", "prompt_id", "prompt_text", "sample", "status", "attempts", "next_attempt_at",
                   "started_at", "finished_at", "backend", "model", "text", "sources", "usage", "latency_ms", "error"]
        sql = (
            f"INSERT INTO {quote(item.db_table)} ({', '.join(quote(c) for c in columns)}) "
            f"SELECT g.{quote('id')}, pr.provider, p.{quote('id')}, p.{quote('text')}, 1, %s, 1, g.{quote('created_at')}, "
            f"g.{quote('created_at')}, g.{quote('finished_at')}, %s, 'simulated-' || pr.provider, v.body || p.{quote('text')}, "
            f"v.sources, %s, 800 + (p.{quote('id')} %% 97) * 40, '' "
            f"FROM {quote(group.db_table)} g "
            f"JOIN {quote(prompt.db_table)} p ON p.{quote('workspace_id')} = g.{quote('workspace_id')} "
            f"CROSS JOIN ({providers}) pr "
            f"JOIN ({variants}) v ON v.n = (p.{quote('id')} + pr.n) %% {_VARIANTS} "
            f"WHERE g.{quote('id')} IN ({{ids}}) "
            f"ORDER BY g.{quote('created_at')}, pr.n, p.{quote('id')}"
        )
        group_id_field = group.get_field("id")
        written = 0
        with connection.cursor() as cursor:
            for start in range(0, len(group_ids), 50):
                chunk = [group_id_field.get_db_prep_value(g, connection) for g in group_ids[start:start + 50]]
                cursor.execute(
                    sql.format(ids=", ".join(["%s"] * len(chunk))),
                    [JobItem.Status.OK.value, JobItem.Backend.SIMULATED.value, usage, *PROVIDERS, *variant_params, *chunk],
                )
                written += cursor.rowcount
        return written

    def _mentions_bulk(self, *, workspace: Workspace) -> None:
        from bench.visibility_fixture import visibility_bulk_write

        started = time.monotonic()
        written = visibility_bulk_write(workspace=workspace, brands=_BRANDS)
        self.stdout.write(f"{len(_BRANDS)} brands; {written} answers given findings (bulk), figures written, "
                          f"in {time.monotonic() - started:.1f} s")

    def _analyze(self, options: dict) -> None:
        if options["analyze"] and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")

    def _fillers(self, *, options: dict, now) -> None:
        """Other tenants' workspaces, owned by another user: the tables grow as a multi-tenant installation's do."""
        count, runs, prompts = options["filler_workspaces"], options["filler_runs"], options["filler_prompts"]
        if count < 1:
            return
        started = time.monotonic()
        owner, _ = get_user_model().objects.get_or_create(username=f"{options['username']}-tenants")
        if connection.vendor == "postgresql":
            answers = self._fillers_insert_select(owner=owner, count=count, runs=runs, prompts=prompts, now=now)
        else:
            answers = 0
            for index in range(count):
                filler = self._workspace(user=owner, name=f"Filler {index + 1}", prompts=prompts)
                answers += self._runs(workspace=filler, user=owner, days=runs, now=now - timedelta(minutes=index + 1))
        self.stdout.write(f"{count} filler workspaces, {answers} answers in {time.monotonic() - started:.1f} s")

    def _fillers_insert_select(self, *, owner, count: int, runs: int, prompts: int, now) -> int:
        """PostgreSQL: every filler workspace's prompts, runs and run providers in one statement each
        (generate_series), then its answers in one INSERT ... SELECT per workspace, committed one by one
        so that ten million rows never sit in one transaction."""
        workspaces = Workspace.objects.bulk_create(
            [Workspace(name=f"Filler {n + 1}", enabled_providers=list(PROVIDERS)) for n in range(count)])
        Membership.objects.bulk_create(
            [Membership(user=owner, workspace=w, role=Membership.Role.OWNER) for w in workspaces])
        ids = [w.id for w in workspaces]
        quote = connection.ops.quote_name
        each_workspace = "FROM unnest(%s::uuid[]) WITH ORDINALITY AS w(id, ordinal) CROSS JOIN generate_series(0, %s) AS n"
        # Run n is n days old, as in the main workspace; each tenant runs at its own minute of the
        # day, so runs of different workspaces never share a created_at (lists sort by it).
        day = "(%s::timestamptz - n * interval '1 day' - w.ordinal * interval '1 minute')"
        with connection.cursor() as cursor:
            self._insert_select(cursor, Prompt, {
                "workspace_id": ("w.id", []), "is_active": ("true", []), "created_at": ("%s", [now]),
                "text": ("'Which CRM suits a team of ' || (n %% 200 + 2) || ' in sector ' || n || '?'", []),
            }, each_workspace, [ids, prompts - 1])
            self._insert_select(cursor, JobGroup, {
                "id": ("gen_random_uuid()", []), "workspace_id": ("w.id", []), "triggered_by_id": ("%s", [owner.id]),
                "status": ("%s", [JobGroup.Status.COMPLETED.value]), "providers": ("%s", [list(PROVIDERS)]),
                "total_prompts": ("%s", [prompts]), "expected_responses": ("%s", [prompts * len(PROVIDERS)]),
                "progress": ("%s", [_progress(prompts=prompts, providers=PROVIDERS)]),
                "created_at": (day, [now]), "finished_at": (f"{day} + interval '12 minutes'", [now]),
            }, each_workspace, [ids, runs - 1])
            self._insert_select(cursor, JobGroupProvider, {
                "group_id": ("g.id", []), "provider": ("pr.provider", []),
                "status": ("%s", [JobGroupProvider.Status.COMPLETED.value]),
                "started_at": ("g.created_at", []), "finished_at": ("g.finished_at", []),
            }, f"FROM {quote(JobGroup._meta.db_table)} g CROSS JOIN unnest(%s::text[]) AS pr(provider) "
               "WHERE g.workspace_id = ANY(%s::uuid[]) ORDER BY g.created_at, g.id, pr.provider", [list(PROVIDERS), ids])
        answers = 0
        for index, workspace in enumerate(workspaces, 1):
            group_ids = list(JobGroup.objects.filter(workspace=workspace).values_list("id", flat=True))
            answers += self._items_insert(workspace=workspace, group_ids=group_ids)
            if index % 20 == 0:
                self.stdout.write(f"  {index} of {count} filler workspaces, {answers} answers")
                self.stdout.flush()
        return answers

    @staticmethod
    def _insert_select(cursor, model: type[models.Model], values: dict[str, tuple[str, list]], source: str,
                       source_params: list) -> None:
        """INSERT INTO the model's table SELECT the SQL `values` (by column) and every other column's
        model default, FROM `source`: a column added to the model later gets its default here too."""
        columns, expressions, params = [], [], []
        for field in model._meta.concrete_fields:
            if field.column in values:
                expression, expression_params = values[field.column]
                expressions.append(expression)
                params += [field.get_db_prep_save(v, connection) if isinstance(v, dict | list) else v
                           for v in expression_params]
            elif field.primary_key and isinstance(field, AutoFieldMixin):
                continue
            elif field.primary_key or not field.has_default() and not field.null and not field.empty_strings_allowed:
                raise CommandError(f"{model.__name__}.{field.name} needs a value")
            else:
                expressions.append("%s")
                params.append(field.get_db_prep_save(field.get_default(), connection))
            columns.append(connection.ops.quote_name(field.column))
        cursor.execute(f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({', '.join(columns)}) "
                       f"SELECT {', '.join(expressions)} {source}", [*params, *source_params])
