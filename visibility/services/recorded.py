"""The analysis of each recorded answer, and writing it as rows in batches.

An answer's findings are computed as it is recorded and stored on its own row by the UPDATE that
records it (the `answer_findings` signal, `JobItem.findings`): the answer and its analysis are
one write. The visibility reads need them as mention, domain and marker rows; writing those for
each answer would be three more commits per answer, and on SQLite, where every commit waits for
the one writer, that cost more than the answer itself. So a queue consumer writes them from a
background thread every WRITE_INTERVAL_SECONDS (sooner past BATCH_SIZE answers), for every answer
this process recorded meanwhile, in a few multi-row statements. Elsewhere (a web process, a command,
a test) they are written at once.

Nothing is lost if a process stops with answers pending: their findings are on their rows. A run
that closes writes the rows of its answers that have none yet (`job_group_findings_write`) before
its figures, so they are complete; the sweep retries any other answer left without them.
"""

from __future__ import annotations

import atexit
import logging
import threading

from django.db import close_old_connections, connection
from django.db.models import Exists, OuterRef

from agent.models import JobItem
from visibility.models import AnalysedAnswer
from visibility.services.analysis import RecordedFindings, findings_unpack, findings_write
from visibility.services.sweep import items_analyse

logger = logging.getLogger(__name__)

# Short, so a run's figures rarely wait for them: a run that closes writes what is still pending
# itself, which another process then writes a second time (ON CONFLICT skips it).
WRITE_INTERVAL_SECONDS = 0.25
BATCH_SIZE = 500


class FindingsWriter:
    """Recorded answers' findings waiting to be written, and the thread that writes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[RecordedFindings] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def save(self, entry: RecordedFindings) -> None:
        """Write `entry` with the next batch, or now when this process runs no writer thread."""
        if self._thread is None:
            findings_write([entry])
            return
        with self._lock:
            self._pending.append(entry)
            full = len(self._pending) >= BATCH_SIZE
        if full:
            self._wake.set()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="visibility-findings-writer", daemon=True)
        self._thread.start()
        # A consumer stopped gracefully writes what it holds; a killed one leaves it to the close and the sweep.
        atexit.register(self.stop)

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is pending and end the thread (and its database connection)."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            self.flush()
            return
        self._stopping.set()
        self._wake.set()
        thread.join(timeout)

    def flush(self) -> int:
        """Write every pending entry now; returns how many answers' rows were written."""
        with self._lock:
            entries, self._pending = self._pending, []
        if not entries:
            return 0
        close_old_connections()  # this thread's connection may have broken since the last batch
        return findings_write(entries)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.wait(WRITE_INTERVAL_SECONDS)
                self._wake.clear()
                try:
                    self.flush()
                except Exception:  # findings_write logs what it can; anything else must not stop the thread
                    logger.exception("writing a batch of analyses failed; their run's close or the sweep writes them")
        finally:
            connection.close()


findings_writer = FindingsWriter()


def job_group_findings_write(*, group_id) -> int:
    """Write the rows of a run's ok answers that have none yet: those another process still holds in
    its batch, and those whose findings could not be computed when recorded (analysed now).
    Returns how many answers were written."""
    findings_writer.flush()  # this process's own pending answers, in one batch with every other run's
    unwritten = (
        JobItem.objects.filter(group_id=group_id, status=JobItem.Status.OK)
        .filter(~Exists(AnalysedAnswer.objects.filter(item_id=OuterRef("id"))))
        .values_list("id", "provider", "findings")
    )
    entries, without = [], []
    for item_id, provider, stored in unwritten:
        findings = findings_unpack(stored)
        if findings is None:
            without.append(item_id)
        else:
            entries.append(RecordedFindings(item_id=item_id, group_id=str(group_id), provider=provider, findings=findings))
    written = findings_write(entries)
    if without:
        try:
            items_analyse(item_ids=without)  # read in one query, written in one transaction per workspace
            written += len(without)
        except Exception:
            logger.exception("analysis of %d answers of run %s failed; the visibility sweep retries them",
                             len(without), group_id)
    return written
