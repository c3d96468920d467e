"""The scheduler process: jobs in the project's database, misfire handling set on purpose, clean SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scheduler.service import DAILY_JOB_ID, build_scheduler


def test_daily_job_is_stored_once_with_deliberate_misfire_settings(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/sched.sqlite3"
    first = build_scheduler(url, None, hour=6)
    job = first.get_job(DAILY_JOB_ID)
    assert job is not None
    assert job.misfire_grace_time is None and job.coalesce is True and job.max_instances == 1
    next_run = job.next_run_time
    first.shutdown(wait=False)
    second = build_scheduler(url, None, hour=6)  # a restart: the stored job (and its missed run) is kept
    jobs = second.get_jobs()
    assert [j.id for j in jobs] == [DAILY_JOB_ID]
    assert jobs[0].next_run_time == next_run
    second.shutdown(wait=False)


def test_foreground_scheduler_stops_cleanly_on_sigterm(tmp_path: Path):
    env = {**os.environ, "GJJ_DATABASE_URL": f"sqlite:///{tmp_path}/run.sqlite3"}
    process = subprocess.Popen([sys.executable, "-m", "ledger.cli", "scheduler", "run"], env=env,
                               stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    seen = ""
    while time.monotonic() < deadline and "next run" not in seen:
        line = process.stderr.readline()
        if not line:
            break
        seen += line
    assert "next run" in seen, seen
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert "scheduler stopped" in process.stderr.read()
