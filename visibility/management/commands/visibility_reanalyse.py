"""`manage.py visibility_reanalyse <workspace id or name>`: analyse every stored answer of a workspace again."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from agent.management.commands.run_group import workspace_find
from visibility.services.analysis import workspace_reanalyse


class Command(BaseCommand):
    help = (
        "Re-analyse every ok answer of a workspace (by id or exact name) with its current brands, "
        "then refresh its run figures."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("workspace", nargs="?", help="workspace id or exact name")
        parser.add_argument(
            "--pending", action="store_true",
            help="run one visibility sweep now: every workspace whose brands changed, and runs left without figures",
        )

    def handle(self, *args, workspace: str | None, pending: bool, **options) -> None:
        if pending:
            from visibility.services.sweep import visibility_sweep

            report = visibility_sweep()
            self.stdout.write(
                f"{len(report.reanalysed)} workspace(s) re-analysed "
                f"({sum(r.answers for r in report.reanalysed)} answers); figures of {report.runs_refreshed} run(s) written."
            )
            return
        if not workspace:
            raise CommandError("Name a workspace (id or exact name), or pass --pending.")
        target = workspace_find(workspace)
        result = workspace_reanalyse(workspace_id=target.id)
        verdict = (
            "re-analysed" if result.finished else "partly re-analysed (the brands changed meanwhile; run it again)"
        )
        self.stdout.write(
            f"{target.name}: {result.answers} answers {verdict} in {result.seconds:.1f} s (brand revision {result.revision})."
        )
