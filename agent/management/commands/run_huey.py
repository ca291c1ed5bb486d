"""Consume one provider's queue (`--queue chatgpt`), or every queue (`--queue all`, for development)."""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from huey.consumer_options import ConsumerConfig, OptionParserHandler

from agent.consumer_registry import consumer_beat_start, dequeue_gate
from agent.queues import queue_name
from agent.recovery import recovery_sweeper_start
from agent.scheduler import schedule_ticker_start
from agent.tasks import TaskLinesFilter, consumer_huey
from oneglanse.provider_ids import PROVIDER_IDS


class Command(BaseCommand):
    help = (
        "Run the Huey consumer of one provider queue. Every Huey consumer flag works "
        "(-w workers, -k worker type, -t shutdown timeout, ...). SIGTERM is graceful by default."
    )
    _type_map = {"int": int, "float": float}

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--queue",
            choices=[*PROVIDER_IDS, "all"],
            help=f"the provider queue to consume: {', '.join(PROVIDER_IDS)}, or 'all' (one child process per queue)",
        )
        handler = OptionParserHandler()
        for options in (handler.get_logging_options(), handler.get_worker_options(), handler.get_scheduler_options()):
            for short, full, kwargs in options:
                kwargs = dict(kwargs)
                if short == "-v":  # Django owns -v/--verbosity
                    short, full = "-V", "--huey-verbose"
                if "type" in kwargs:
                    kwargs["type"] = self._type_map[kwargs["type"]]
                kwargs.setdefault("default", None)
                parser.add_argument(full, short, **kwargs)

    def handle(self, *args, **options) -> None:
        queue = options["queue"]
        if not queue:
            raise CommandError(f"--queue is required: one of {', '.join(PROVIDER_IDS)}, or 'all'.")
        if queue == "all":
            sys.exit(self._run_all())

        consumer_options = {key: options[key] for key in _consumer_keys() if options.get(key) is not None}
        # Orchestrators stop services with SIGTERM: make it the graceful signal unless told otherwise.
        consumer_options.setdefault("graceful_signal", "TERM")
        config = ConsumerConfig(**consumer_options)
        try:
            config.validate()
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        huey_logger = logging.getLogger("huey")
        huey_logger.addFilter(TaskLinesFilter())
        if config.logfile or config.verbose is not None or not logging.getLogger().handlers:
            config.setup_logger(huey_logger)
            huey_logger.propagate = False
        huey = consumer_huey(queue)
        moved = huey.storage.queue_upgrade()
        if moved:
            self.stdout.write(f"Moved {moved} waiting messages onto the priority queue of {queue}")
        # Seen by GET /api/queues/ and /metrics on every host; the gate holds this queue's items
        # on the queue while an operator has paused it.
        beat = consumer_beat_start(provider_id=queue, workers=config.workers, worker_type=config.worker_type)
        huey.storage.dequeue_gate = dequeue_gate(queue)
        recovery_sweeper_start()
        schedule_ticker_start()
        self.stdout.write(f"Consuming {queue_name(queue)} with {config.workers} {config.worker_type} worker(s)")
        try:
            huey.create_consumer(**config.values).run()
        finally:
            beat.stop()

    def _run_all(self) -> int:
        """One child consumer per queue, with the same flags; signals are passed on to them."""
        argv, skip_next = [], False
        for arg in sys.argv[1:]:
            if skip_next:
                skip_next = False
            elif arg == "--queue":
                skip_next = True
            elif not arg.startswith("--queue="):
                argv.append(arg)
        children = [
            subprocess.Popen([sys.executable, sys.argv[0], *argv, "--queue", provider_id]) for provider_id in PROVIDER_IDS
        ]

        def forward(signum, _frame) -> None:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        while any(child.poll() is None for child in children):
            time.sleep(0.2)
        return max(child.returncode or 0 for child in children)


def _consumer_keys() -> list[str]:
    from huey.consumer_options import config_keys

    return list(config_keys)
