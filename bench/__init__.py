"""The benchmark suite (`python bench/run.py`): its own Redis, consumers and web server; see BENCHMARKS.md."""
