"""The bench app of `bench.analysis_off_settings`: consumers identical to the product's but with no
analysis of answers, the baseline of "analysis adds < 10 % CPU per answer"."""
from django.apps import AppConfig


class AnalysisOffConfig(AppConfig):
    name = "bench"
    label = "bench_analysis_off"

    def ready(self) -> None:
        # Listed after "visibility", so its receivers are connected by now and taken away here: no
        # analysis when an answer is recorded, no figures when a run closes (its close would analyse
        # every answer left without findings), and no visibility sweep.
        from agent.signals import answer_findings, consumer_started, job_group_closed

        answer_findings.disconnect(dispatch_uid="visibility.answer_findings")
        consumer_started.disconnect(dispatch_uid="visibility.consumer_started")
        job_group_closed.disconnect(dispatch_uid="visibility.job_group_closed")
