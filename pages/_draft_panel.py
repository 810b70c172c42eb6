"""The "Draft emails" panel of the donor list page: the campaign brief, then a
drafting run in the background with a live progress bar, Cancel, and what the run
used (tokens, estimated cost).

The run itself lives in the database (lib.drafting.jobs), so a rerun, a reload or a
second tab shows the same progress; this panel only starts, reads and cancels it.
Drafts are written, never sent: sending happens on the Review & send page, one
click at a time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

import pandas as pd
import streamlit as st

from lib.app_settings import get_setting, put_setting
from lib.drafting.base import CampaignBrief, Drafter
from lib.drafting.jobs import (
    JobProgress,
    cancel_job,
    job_progress,
    latest_job,
    start_job,
)
from lib.drafting.template import DEFAULT_TEMPLATE, TemplateDrafter, compile_template
from lib.drafts import list_drafts
from lib.errors import StewardError
from lib.services import Services
from pages._common import plain, show_error

BRIEF_SETTING = "draft_brief"  # the last brief typed, kept across reloads
TONES = ["warm", "formal", "upbeat", "plain"]
LENGTHS = ["short", "medium", "long"]
POLL_S = 1.0  # how often the progress bar refreshes while a run is going


def _writer(services: Services) -> Drafter | None:
    try:
        return services.drafter()
    except StewardError as exc:
        show_error(exc)
        return None


def _brief_form(services: Services, drafter: Drafter, donor_ids: list[int]) -> None:
    saved = get_setting(services.engine, BRIEF_SETTING, {}) or {}
    uses_template = isinstance(drafter, TemplateDrafter)
    running = (job := latest_job(services.engine)) is not None and job.running
    with st.form("draft_brief"):
        campaign = st.text_input("Campaign", value=saved.get("campaign", ""))
        note = st.text_area(
            "Note / brief for the drafts",
            value=saved.get("note", ""),
            help="What every draft should say or ask (an amount to ask for goes "
            "here). Donor notes are only ever used as background facts.",
        )
        left, right = st.columns(2)
        tone = left.selectbox("Tone", TONES, index=_index(TONES, saved.get("tone")))
        length = right.selectbox(
            "Length", LENGTHS, index=_index(LENGTHS, saved.get("length"))
        )
        signature = st.text_area("Signature", value=saved.get("signature", ""))
        template = None
        if uses_template:
            template = st.text_area(
                "Template (first line is the subject)",
                value=saved.get("template") or DEFAULT_TEMPLATE,
                height=280,
            )
        go = st.form_submit_button(
            f"Draft emails ({len(donor_ids)})",
            type="primary",
            disabled=not donor_ids or running,
        )
    if not go:
        return
    brief = CampaignBrief(
        campaign=campaign.strip(),
        note=note.strip(),
        tone=tone,
        length=length,
        signature=signature.strip(),
        template=template,
    )
    put_setting(services.engine, BRIEF_SETTING, asdict(brief))
    try:
        if template is not None:
            compile_template(template)
        start_job(services, donor_ids, brief, drafter=drafter)
    except StewardError as exc:
        show_error(exc)


def _index(options: list[str], value: object) -> int:
    return options.index(value) if value in options else 0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "working out the time left"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"about {minutes} min {secs} s left" if minutes else f"about {secs} s left"


def _usage(job: JobProgress) -> None:
    if job.model_calls == 0 and job.cached == 0:
        return
    tokens = job.prompt_tokens + job.completion_tokens
    cost = (
        f"estimated cost ${job.cost_usd:.4f}"
        if job.cost_usd is not None
        else "no price known for this model"
    )
    st.caption(
        plain(
            f"{tokens:,} tokens ({job.prompt_tokens:,} in, {job.completion_tokens:,} "
            f"out), {job.model_calls} model calls, {job.cached} from the cache "
            f"(no call), {cost}."
        )
    )


def _rows_to_look_at(services: Services, job: JobProgress) -> None:
    drafts = list_drafts(services.engine, ["failed", "needs_review"])
    drafts = drafts[drafts["donor_id"].isin(job.donor_ids)]
    if not drafts.empty:
        st.caption("Rows to look at (edit them on Review & send):")
        shown = drafts[["donor_name", "status", "error", "review_issues"]]
        st.dataframe(shown.fillna(""), hide_index=True, width="stretch")
    if job.skipped:
        reasons = Counter(job.skipped.values())
        table = pd.DataFrame(
            {"not drafted": list(reasons), "donors": list(reasons.values())}
        )
        st.dataframe(table, hide_index=True)


def _summary(job: JobProgress) -> None:
    text = (
        f"Drafting run {job.id} {job.status}: {job.drafted} drafted, "
        f"{job.failed} failed, {len(job.skipped)} not drafted."
    )
    if job.status in ("failed", "interrupted"):
        st.error(plain(f"{text} {job.error or ''}"))
    elif job.failed:
        st.warning(plain(text))
    else:
        st.success(plain(text))


def _progress(services: Services) -> None:
    first = latest_job(services.engine)
    if first is None:
        return
    was_running = first.running

    @st.fragment(run_every=POLL_S if was_running else None)
    def live() -> None:
        job = job_progress(services.engine, first.id)
        if job.running:
            st.progress(
                job.fraction,
                text=f"Drafting: {job.done} of {job.total} done, {job.failed} "
                f"failed, {_duration(job.seconds_left)}",
            )
            if st.button("Cancel", key="draft_cancel"):
                cancel_job(services.engine, job.id)
                st.toast("Stopping: drafts already written are kept.")
        else:
            _summary(job)
        _usage(job)
        if was_running and not job.running:
            st.rerun()  # stop polling and show the finished run with its rows
        if not job.running:
            _rows_to_look_at(services, job)

    live()


def render(services: Services, donor_ids: list[int]) -> None:
    """The panel: brief, "Draft emails" for ``donor_ids``, live progress."""
    drafter = _writer(services)
    if drafter is None:
        return
    st.caption(plain(f"Writer: {_describe(drafter)}"))
    _brief_form(services, drafter, donor_ids)
    _progress(services)


def _describe(drafter: Drafter) -> str:
    if isinstance(drafter, TemplateDrafter):
        return "the mail-merge template (no model configured; see Connect)"
    config = getattr(drafter, "config", None)
    if config is not None:
        return (
            f"{config.model} at {config.server}, {config.concurrency} at a time; "
            "every draft is checked against the donor's record"
        )
    return drafter.name
