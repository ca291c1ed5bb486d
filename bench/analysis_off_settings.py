"""Bench settings of consumers that record answers without analysing them (bench/run.py, scenario 2)."""
from bench.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.analysis_off.AnalysisOffConfig"]  # noqa: F405
