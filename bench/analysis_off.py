"""The bench app of `bench.analysis_off_settings`: consumers identical to the product's but with no
analysis of answers, the baseline of "analysis adds < 10 % CPU per answer"."""
from django.apps import AppConfig


class AnalysisOffConfig(AppConfig):
    name = "bench"
    label = "bench_analysis_off"

    def ready(self) -> None:
        # Listed after "visibility", so its receivers are connected by now and taken away here: no
        # analysis when an answer is recorded, and no sweep retrying the answers left unanalysed.
        from agent.signals import answer_recorded, consumer_started

        answer_recorded.disconnect(dispatch_uid="visibility.answer_recorded")
        consumer_started.disconnect(dispatch_uid="visibility.consumer_started")
