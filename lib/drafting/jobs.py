"""Drafting jobs: "Draft emails" for many donors runs in a background thread, so the
page stays responsive and a rerun (or a second tab) finds the run where it is.

Why the state lives in the ``draft_jobs`` table and not in the page: Streamlit
reruns the script on every click and forgets ``session_state`` on reload. The job
row holds progress (done, failed, total), token usage, estimated cost and the
cancel flag; the page only reads it. Cancel stops new donors from starting and
keeps every draft already written (they are saved by
:func:`lib.drafting.run.draft_for_donors`). Every draft goes through the grounding
check, so a draft stating an unsupported amount, date or name is saved as "needs
review".

Only one job runs at a time: a second click while one runs is refused, so a double
click never pays for the same drafts twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from lib.db import as_utc, utcnow
from lib.drafting.ai import ModelDrafter
from lib.drafting.base import CampaignBrief, Drafter
from lib.drafting.grounding import check_draft
from lib.drafting.model_settings import estimate_cost, model_prices
from lib.drafting.run import CHUNK_SIZE, draft_for_donors
from lib.errors import StewardError
from lib.models import Donor
from lib.schema import draft_jobs_table

log = logging.getLogger(__name__)

# How often a running job re-reads the cancel flag written by another session.
CANCEL_POLL_S = 0.5
# Progress is written at most this often (and always at the end).
PROGRESS_WRITE_S = 0.25
# Donors per saved chunk for a model drafter, in multiples of its concurrency. Each
# chunk ends with every worker waiting for the chunk's slowest reply, and no model
# call runs while the chunk is saved; at 24 donors a chunk that cost about 20% of
# the ideal time (bench_drafting), at 256 about 12%. A larger chunk loses nothing
# on a crash: each reply is cached as it arrives, so drafting again is free; a
# cancel still returns and saves what is done.
# Limit: drafts of a chunk appear on the page only when the whole chunk is saved.
MODEL_CHUNK_WAVES = 32
# A job marked running that no thread here owns and that has not moved for this
# long was cut short (the app stopped); it is shown as interrupted.
STALE_AFTER_S = 120.0

RUNNING = "running"

_threads: dict[int, threading.Thread] = {}
_cancel_events: dict[int, threading.Event] = {}
_registry_lock = threading.Lock()


@dataclass(frozen=True)
class JobProgress:
    """One drafting job as the page shows it."""

    id: int
    status: str
    drafter: str
    donor_ids: list[int]
    total: int  # donors being drafted (skipped ones not counted)
    done: int  # finished: drafted or failed
    failed: int
    cached: int
    skipped: dict[int, str]  # donor id -> why no draft was written
    model_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    error: str | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def drafted(self) -> int:
        return self.done - self.failed

    @property
    def fraction(self) -> float:
        """Share of donors finished (drafted or failed), 0.0 to 1.0."""
        return min(1.0, self.done / self.total) if self.total else 1.0

    @property
    def seconds_left(self) -> float | None:
        """Estimated seconds to go at the pace so far; None before the first draft
        or once the job has ended."""
        if not self.running or self.done == 0:
            return None
        elapsed = (utcnow() - self.started_at).total_seconds()
        return max(0.0, elapsed / self.done * (self.total - self.done))


def _progress_from_row(row: Any) -> JobProgress:
    return JobProgress(
        id=row.id,
        status=row.status,
        drafter=row.drafter,
        donor_ids=[int(i) for i in row.donor_ids or []],
        total=row.total,
        done=row.done,
        failed=row.failed,
        cached=row.cached,
        skipped={int(k): str(v) for k, v in (row.skipped or {}).items()},
        model_calls=row.model_calls,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost_usd=row.cost_usd,
        error=row.error,
        started_at=as_utc(row.started_at) or utcnow(),
        updated_at=as_utc(row.updated_at) or utcnow(),
        finished_at=as_utc(row.finished_at),
    )


def start_job(
    services: Any,
    donor_ids: list[int],
    brief: CampaignBrief,
    *,
    drafter: Drafter | None = None,
) -> int:
    """Start drafting for ``donor_ids`` in a background thread; return the job id.

    ``drafter`` defaults to the configured one (model, else template). Raises
    StewardError when no donor is given or another job is still running.
    """
    ids = [int(i) for i in donor_ids]
    if not ids:
        raise StewardError("Select at least one donor to draft for.")
    drafter = drafter or services.drafter()
    now = utcnow()
    with services.engine.begin() as conn:  # BEGIN IMMEDIATE: check-and-insert is atomic
        running = conn.execute(
            select(draft_jobs_table.c.id).where(draft_jobs_table.c.status == RUNNING)
        ).all()
        for (other,) in running:
            if _owned_here(other) or not _stale(conn, other):
                raise StewardError(
                    "A drafting run is still going. Wait for it to finish or "
                    "cancel it, then draft again."
                )
            _mark_interrupted(conn, other)
        job_id = conn.execute(
            draft_jobs_table.insert().values(
                status=RUNNING,
                drafter=drafter.name,
                donor_ids=ids,
                brief=asdict(brief),
                total=len(ids),
                started_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
    job_id = int(job_id)
    event = threading.Event()
    thread = threading.Thread(
        target=_run_job,
        args=(services, job_id, ids, brief, drafter, event),
        name=f"draft-job-{job_id}",
        daemon=True,
    )
    with _registry_lock:
        _threads[job_id] = thread
        _cancel_events[job_id] = event
    thread.start()
    log.info("drafting job %d started: %d donors, %s", job_id, len(ids), drafter.name)
    return job_id


def cancel_job(engine: Engine, job_id: int) -> bool:
    """Ask a running job to stop; drafts already written are kept. Returns False
    when the job is not running (any more)."""
    with engine.begin() as conn:
        changed = conn.execute(
            update(draft_jobs_table)
            .where(draft_jobs_table.c.id == job_id)
            .where(draft_jobs_table.c.status == RUNNING)
            .values(cancel_requested=True, updated_at=utcnow())
        ).rowcount
    with _registry_lock:
        event = _cancel_events.get(job_id)
    if event is not None:
        event.set()
    return bool(changed)


def job_progress(engine: Engine, job_id: int) -> JobProgress:
    """The job's current state. Raises StewardError when there is no such job."""
    with engine.begin() as conn:
        row = _row(conn, job_id)
        if row is None:
            raise StewardError(f"Drafting run {job_id} no longer exists.")
        if row.status == RUNNING and not _owned_here(job_id) and _stale(conn, job_id):
            _mark_interrupted(conn, job_id)
            row = _row(conn, job_id)
    return _progress_from_row(row)


def latest_job(engine: Engine) -> JobProgress | None:
    """The most recent drafting job, or None when nothing was ever drafted."""
    with engine.connect() as conn:
        job_id = conn.execute(
            select(draft_jobs_table.c.id).order_by(draft_jobs_table.c.id.desc())
        ).scalar()
    return None if job_id is None else job_progress(engine, int(job_id))


def wait_for_job(
    engine: Engine, job_id: int, timeout_s: float, poll_s: float = 0.02
) -> JobProgress:
    """Block until the job ends or ``timeout_s`` passes; return its state then."""
    deadline = time.monotonic() + timeout_s
    with _registry_lock:
        thread = _threads.get(job_id)
    if thread is not None:
        thread.join(timeout=max(0.0, timeout_s))
    progress = job_progress(engine, job_id)
    while progress.running and time.monotonic() < deadline:
        time.sleep(poll_s)
        progress = job_progress(engine, job_id)
    return progress


# -- the job thread ------------------------------------------------------------------


def _run_job(
    services: Any,
    job_id: int,
    donor_ids: list[int],
    brief: CampaignBrief,
    drafter: Drafter,
    event: threading.Event,
) -> None:
    engine = services.engine
    is_cancelled = _cancel_check(engine, job_id, event)
    usage = _usage_meter(engine, drafter)
    last_write = [0.0]

    def progress(done: int, failed: int, total: int) -> None:
        now = time.monotonic()
        if now - last_write[0] < PROGRESS_WRITE_S and done < total:
            return
        last_write[0] = now
        _write(engine, job_id, done=done, failed=failed, total=total, **usage())

    def review(donor: Donor, subject: str, body: str) -> list[str]:
        return check_draft(donor, brief, subject, body)

    status, error = "done", None
    try:
        run = draft_for_donors(
            services,
            donor_ids,
            brief,
            drafter=drafter,
            progress=progress,
            cancelled=is_cancelled,
            review=review,
            chunk_size=_chunk_size(drafter),
        )
        counts: dict[str, Any] = {
            "done": len(run.drafted) + len(run.failed),
            "failed": len(run.failed),
            "skipped": {str(k): v for k, v in run.skipped.items()},
            "total": len(set(donor_ids)) - len(run.skipped),
        }
        if run.cancelled:
            status = "cancelled"
    except StewardError as exc:
        status, error, counts = "failed", exc.message, {}
    except Exception:  # a bug: keep the job row honest, and let the log show it
        log.exception("drafting job %d failed", job_id)
        status, counts = "failed", {}
        error = "The drafting run stopped on an unexpected error; see the app log."
    try:
        final = {"status": status, "error": error, "finished_at": utcnow()}
        _write(engine, job_id, **final, **counts, **usage())
    finally:
        with _registry_lock:
            _threads.pop(job_id, None)
            _cancel_events.pop(job_id, None)
    log.info("drafting job %d %s", job_id, status)


def _chunk_size(drafter: Drafter) -> int:
    if isinstance(drafter, ModelDrafter):
        return max(CHUNK_SIZE, drafter.config.concurrency * MODEL_CHUNK_WAVES)
    return CHUNK_SIZE


def _usage_meter(engine: Engine, drafter: Drafter) -> Callable[[], dict[str, Any]]:
    """Usage of this run so far (requests, cache hits, tokens, estimated cost), for
    a model drafter; the template drafter uses none."""
    if not isinstance(drafter, ModelDrafter):
        return lambda: {}
    start = replace(drafter.usage)
    prices = model_prices(engine)

    def measure() -> dict[str, Any]:
        now = replace(drafter.usage)
        prompt = now.prompt_tokens - start.prompt_tokens
        completion = now.completion_tokens - start.completion_tokens
        return {
            "cached": now.cached - start.cached,
            "model_calls": now.calls - start.calls,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cost_usd": estimate_cost(drafter.config.model, prompt, completion, prices),
        }

    return measure


def _cancel_check(
    engine: Engine, job_id: int, event: threading.Event
) -> Callable[[], bool]:
    """A thread-safe "was cancel pressed?" for the drafters: the in-process event,
    plus the database flag (another process or session) every CANCEL_POLL_S."""
    last_poll = [0.0]
    lock = threading.Lock()

    def cancelled() -> bool:
        if event.is_set():
            return True
        with lock:
            if time.monotonic() - last_poll[0] < CANCEL_POLL_S:
                return False
            last_poll[0] = time.monotonic()
        with engine.connect() as conn:
            flag = conn.execute(
                select(draft_jobs_table.c.cancel_requested).where(
                    draft_jobs_table.c.id == job_id
                )
            ).scalar()
        if flag:
            event.set()
        return bool(flag)

    return cancelled


# -- rows ------------------------------------------------------------------------------


def _row(conn: Any, job_id: int) -> Any:
    return conn.execute(
        select(draft_jobs_table).where(draft_jobs_table.c.id == job_id)
    ).first()


def _write(engine: Engine, job_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(draft_jobs_table)
            .where(draft_jobs_table.c.id == job_id)
            .values(updated_at=utcnow(), **values)
        )


def _owned_here(job_id: int) -> bool:
    with _registry_lock:
        thread = _threads.get(job_id)
    return thread is not None and thread.is_alive()


def _stale(conn: Any, job_id: int) -> bool:
    row = _row(conn, job_id)
    updated = as_utc(row.updated_at) if row is not None else None
    return updated is None or utcnow() - updated > timedelta(seconds=STALE_AFTER_S)


def _mark_interrupted(conn: Any, job_id: int) -> None:
    conn.execute(
        update(draft_jobs_table)
        .where(draft_jobs_table.c.id == job_id)
        .where(draft_jobs_table.c.status == RUNNING)
        .values(
            status="interrupted",
            error="The app stopped during this run; draft the rest again.",
            finished_at=utcnow(),
            updated_at=utcnow(),
        )
    )
