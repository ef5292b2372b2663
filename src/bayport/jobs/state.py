"""From what the cluster reports to the job record: status, times, exit code, message.

The conductor's watch sees a Job and its pods on two streams, in no guaranteed order
between them. ``Observation`` collects the latest word on each (a Job's conditions say
whether it finished; its pods say when the command started, how it exited and why it
waits) and ``Observation.record`` reads the record off the combination. ``merge`` then
applies it to the stored row without ever going backwards: a finished job stays finished,
a known exit code or start time is never forgotten, and times are clamped so that
``created_at <= started_at <= finished_at`` although the cluster's stamps have one-second
precision.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bayport.objects.tenant import LIVE_JOB_STATES, TERMINAL_JOB_STATES, JobStatus

Values = dict[str, Any]
RANK = {JobStatus.PENDING: 0, JobStatus.RUNNING: 1, JobStatus.SUCCEEDED: 2, JobStatus.FAILED: 2}
DELETED_UNFINISHED = "the Job was deleted from the cluster before it finished"
RECORD_FIELDS = ("status", "message", "exit_code", "started_at", "finished_at", "k8s_uid",
                 "deleted_in_cluster")


@dataclass
class JobView:
    """What one Job object says: finished or not, and when."""

    uid: str | None
    outcome: JobStatus | None = None
    reason: str | None = None
    detail: str | None = None
    start_time: datetime | None = None
    finished_at: datetime | None = None
    deleted: bool = False


@dataclass
class PodView:
    """What one of the Job's pods says about its (main) container."""

    phase: str
    created: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    waiting: str | None = None
    deleted: bool = False


def job_view(job: Any, *, deleted: bool = False) -> JobView:
    """Read a lightkube batch/v1 Job."""
    meta, status = job.metadata, job.status
    view = JobView(uid=meta.uid if meta is not None else None, deleted=deleted)
    if status is None:
        return view
    view.start_time = status.startTime
    for cond in status.conditions or ():
        if cond.status != "True":
            continue
        if cond.type == "Complete":
            view.outcome = JobStatus.SUCCEEDED
        elif cond.type == "Failed":
            view.outcome = JobStatus.FAILED
        else:
            continue
        view.reason, view.detail = cond.reason, cond.message
        view.finished_at = status.completionTime or cond.lastTransitionTime
    return view


def pod_view(pod: Any, *, deleted: bool = False) -> PodView:
    """Read a lightkube Pod; with several containers, a failed one speaks for the pod."""
    status = pod.status
    view = PodView(phase=(status.phase if status is not None else None) or "Pending", deleted=deleted,
                   created=pod.metadata.creationTimestamp if pod.metadata is not None else None)
    if status is None:
        return view
    waiting: list[str] = []
    for cs in status.containerStatuses or ():
        state = cs.state
        if state is None:
            continue
        if state.running is not None and state.running.startedAt is not None:
            view.started_at = _earliest(view.started_at, state.running.startedAt)
        elif state.terminated is not None:
            term = state.terminated
            view.started_at = _earliest(view.started_at, term.startedAt)
            view.finished_at = _latest(view.finished_at, term.finishedAt)
            if view.exit_code is None or (view.exit_code == 0 and term.exitCode != 0):
                view.exit_code = term.exitCode
        elif state.waiting is not None and state.waiting.reason:
            waiting.append(": ".join(p for p in (state.waiting.reason, state.waiting.message) if p))
    if waiting:
        view.waiting = waiting[0]
    elif view.phase == "Pending" and (status.reason or status.message):
        view.waiting = ": ".join(p for p in (status.reason, status.message) if p)
    else:
        for cond in status.conditions or ():
            if cond.type == "PodScheduled" and cond.status == "False" and cond.message:
                view.waiting = f"{cond.reason or 'Unschedulable'}: {cond.message}"
    return view


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


@dataclass
class Observation:
    """The latest word on one job (by uuid) from both streams."""

    job: JobView | None = None
    pods: dict[str, PodView] = field(default_factory=dict)
    finished_since: float | None = None
    sent: Values | None = None  # the last record handed on; an unchanged one is not sent again

    def saw_job(self, view: JobView) -> None:
        self.job = view
        if view.outcome is not None and self.finished_since is None:
            self.finished_since = time.monotonic()

    def saw_pod(self, name: str, view: PodView) -> None:
        self.pods[name] = view

    @property
    def settled(self) -> bool:
        """Nothing more will be learnt: the Job and every pod seen of it are gone."""
        return self.job is not None and self.job.deleted and all(p.deleted for p in self.pods.values())

    def record(self) -> Values:
        """The record as these observations show it (``merge`` applies it to a row)."""
        job = self.job
        pods = list(self.pods.values())
        finished = [p for p in pods if p.exit_code is not None]
        last = max(finished, key=lambda p: (p.finished_at or p.created or _EPOCH)) if finished else None
        started = [p.started_at for p in pods if p.started_at is not None]
        values: Values = {
            "k8s_uid": job.uid if job is not None else None,
            "deleted_in_cluster": bool(job is not None and job.deleted),
            "exit_code": last.exit_code if last is not None else None,
            "started_at": min(started) if started else None,
            "finished_at": None,
            "message": None,
        }
        if job is not None and job.outcome is not None:
            values["status"] = job.outcome.value
            values["finished_at"] = job.finished_at or (last.finished_at if last else None)
            if values["started_at"] is None:
                values["started_at"] = job.start_time
            if job.outcome is JobStatus.FAILED:
                text = ": ".join(p for p in (job.reason, job.detail) if p) or "the Job failed"
                if last is not None and last.exit_code:
                    text += f" (the command exited with code {last.exit_code})"
                values["message"] = text
        elif job is not None and job.deleted:
            values["status"] = JobStatus.FAILED.value
            values["message"] = DELETED_UNFINISHED
        elif started or any(p.phase == "Running" for p in pods):
            values["status"] = JobStatus.RUNNING.value
            failures = [p for p in finished if p.exit_code]
            if failures:
                values["message"] = (f"{len(failures)} failed attempt(s) so far; the last exited with "
                                     f"code {failures[-1].exit_code}")
        else:
            values["status"] = JobStatus.PENDING.value
            waiting = [p for p in pods if p.waiting and not p.deleted]
            if waiting:
                values["message"] = waiting[-1].waiting
        return values


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def merge(current: Values, observed: Values) -> Values:
    """The changes ``observed`` makes to the row ``current`` (empty when nothing changes).

    ``current`` carries the row's ``status``, ``created_at`` and every RECORD_FIELDS value.
    """
    now_status = JobStatus(current["status"])
    new_status = JobStatus(observed["status"])
    out: Values = {}
    if now_status in TERMINAL_JOB_STATES and new_status != now_status:
        # A late or partial view of a finished job may fill gaps; it never reopens or flips it.
        for key in ("exit_code", "started_at", "finished_at", "k8s_uid"):
            if current.get(key) is None and observed.get(key) is not None:
                out[key] = observed[key]
    else:
        if RANK[new_status] >= RANK[now_status]:
            out["status"] = new_status.value
            if new_status != now_status or new_status in LIVE_JOB_STATES or observed["message"]:
                out["message"] = observed["message"]
        for key in ("exit_code", "k8s_uid", "finished_at"):
            if observed.get(key) is not None:
                out[key] = observed[key]
        if current.get("started_at") is None and observed.get("started_at") is not None:
            out["started_at"] = observed["started_at"]
        if new_status in TERMINAL_JOB_STATES and out.get("finished_at", current.get("finished_at")) is None:
            out["finished_at"] = datetime.now(UTC)  # the cluster gave no time: when Bayport learnt it
    if observed.get("deleted_in_cluster") and not current.get("deleted_in_cluster"):
        out["deleted_in_cluster"] = True
    _clamp(current, out)
    return {k: v for k, v in out.items() if current.get(k) != v}


def _clamp(current: Values, out: Values) -> None:
    created = current.get("created_at")
    started = out.get("started_at", current.get("started_at"))
    if "started_at" in out and created is not None and started is not None and started < created:
        out["started_at"] = started = created
    finished = out.get("finished_at")
    floor = started or created
    if finished is not None and floor is not None and finished < floor:
        out["finished_at"] = floor
