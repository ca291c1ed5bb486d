"""Tracked brands, the analysis state of each workspace, and per-run figures for trends.

What each answer says about the brands (its findings) is stored on the answer's own row, under
this app's key of `JobItem.findings`: written by the agent's UPDATE that records the answer, and
rewritten by a re-analysis, which changes nothing else of the row (the answer, its sources and
usage stay as recorded). See visibility/services/analysis.py.
"""

from django.db import models
from django.db.models import Q

MAX_BRANDS_PER_WORKSPACE = 50
BRAND_NAME_MAX_LENGTH = 200
ALL_PROVIDERS = "all"  # the provider value of an aggregate over every provider of a run


class Brand(models.Model):
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="brands")
    name = models.CharField(max_length=BRAND_NAME_MAX_LENGTH)
    aliases = models.JSONField(default=list, blank=True, help_text="Other names that count as a mention.")
    domains = models.JSONField(
        default=list, blank=True, help_text='Host names, e.g. ["hubspot.com"]; subdomains count.'
    )
    is_own = models.BooleanField(default=False, help_text="The workspace's own brand (at most one).")
    match_case = models.BooleanField(default=False, help_text="Match the exact case (for names that are common words).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_own", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace"], condition=Q(is_own=True), name="brand_one_own_per_workspace"),
        ]

    def __str__(self) -> str:
        return self.name


class AnalysisState(models.Model):
    """Per workspace: `revision` moves on every brand change; analyses stamped with an older one are stale.

    Its row is also the lock that serialises brand writes (the 50-brand limit) and analysis writes.
    """

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    revision = models.PositiveIntegerField(default=0)
    reanalysed_revision = models.PositiveIntegerField(
        default=0, help_text="The revision the last full re-analysis finished at."
    )
    reanalysed_at = models.DateTimeField(null=True, blank=True)
    reanalysed_version = models.PositiveIntegerField(
        default=1, help_text="The ANALYSIS_VERSION the last full re-analysis used; an older one is re-analysed."
    )


class RunStat(models.Model):
    """A finished run's figures for one provider (or "all"): written at close, read by the trend."""

    group = models.ForeignKey("agent.JobGroup", on_delete=models.CASCADE, related_name="+")
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=32)
    at = models.DateTimeField(help_text="The run's creation time.")
    answers = models.PositiveIntegerField()
    failed = models.PositiveIntegerField()
    analysis_version = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "provider"], name="runstat_unique_group_provider")]
        indexes = [models.Index(fields=["workspace", "at"])]


class RunBrandStat(models.Model):
    """Numerators of one brand's metrics in one RunStat; every tracked brand has a row, mentioned or not."""

    run_stat = models.ForeignKey(RunStat, on_delete=models.CASCADE, related_name="brand_stats")
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    mentioned = models.PositiveIntegerField()
    rank_sum = models.PositiveIntegerField()
    cited = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run_stat", "brand"], name="runbrandstat_unique")]


class RunDomainStat(models.Model):
    """How many answers of one RunStat cite a domain."""

    run_stat = models.ForeignKey(RunStat, on_delete=models.CASCADE, related_name="domain_stats")
    domain = models.CharField(max_length=255)
    answers = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run_stat", "domain"], name="rundomainstat_unique")]
