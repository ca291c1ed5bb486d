"""The bench app of `bench.analysis_off_settings`: consumers identical to the product's but with no
analysis of answers, the baseline of "analysis adds < 10 % CPU per answer"."""
from django.apps import AppConfig


class AnalysisOffConfig(AppConfig):
    name = "bench"
    label = "bench_analysis_off"

    def ready(self) -> None:
        # Listed after "visibility", so its receiver is connected by now and taken away here.
        from agent.signals import answer_recorded

        answer_recorded.disconnect(dispatch_uid="visibility.answer_recorded")
