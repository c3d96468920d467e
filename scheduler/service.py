"""The APScheduler 3 process behind ``gjj scheduler run``.

Jobs live in the project's database (SQLAlchemyJobStore on the same URL as
the ledger), one cron job a day in China time. Misfire handling is set on
purpose (ADR 0010): ``misfire_grace_time=None`` so a run missed while the
process was down still fires after a restart, ``coalesce=True`` so several
missed runs fire once (the ledger's own catch-up covers every missed deduction
date), ``max_instances=1``. Jobs are added only when absent: re-adding with
``replace_existing=True`` before ``start()`` would silently drop a missed run
(STACK-NOTES). Exactly-once never depends on the scheduler: deductions are
keyed by (loan, date) in the ledger.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

logger = logging.getLogger("gjj.scheduler")
TIMEZONE = "Asia/Shanghai"
DAILY_JOB_ID = "gjj-daily"
JOB_TABLE = "gjj_scheduler_jobs"


def daily_job(database_url: str | None, policy_path: str | None) -> dict[str, Any]:
    """The job entry point: it reads the wall clock (an entry point may) and runs the day."""
    from ledger.app import Ledger
    from ledger.policy import load_policy
    from scheduler.jobs import run_day

    ledger = Ledger(database_url, policy=load_policy(policy_path))
    try:
        report = run_day(ledger, ledger.today())
        logger.info("daily run done: %s", report)
        return report
    finally:
        ledger.close()


def build_scheduler(database_url: str | None, policy_path: str | None, hour: int = 6,
                    minute: int = 0) -> BackgroundScheduler:
    """Started paused: the stored jobs (and their missed runs) are loaded before we add anything."""
    from ledger.storage import config_from_env

    config = config_from_env(database_url)
    jobstore = SQLAlchemyJobStore(url=config.sqlalchemy_url(), tablename=JOB_TABLE)
    scheduler = BackgroundScheduler(jobstores={"default": jobstore}, timezone=TIMEZONE,
                                  job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1})
    scheduler.start(paused=True)
    if scheduler.get_job(DAILY_JOB_ID) is None:
        scheduler.add_job(daily_job, CronTrigger(hour=hour, minute=minute, timezone=TIMEZONE), id=DAILY_JOB_ID,
                          name="offset, retries, loan update, yearly jobs", args=[database_url, policy_path])
    return scheduler


def run_forever(database_url: str | None, policy_path: str | None, hour: int = 6, minute: int = 0) -> None:
    """Foreground: logs to stderr; SIGTERM or SIGINT stops it cleanly after the running job."""
    scheduler = build_scheduler(database_url, policy_path, hour, minute)
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        logger.info("signal %s: shutting down after the running job", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for job in scheduler.get_jobs():
        logger.info("job %s next run %s", job.id, job.next_run_time)
    scheduler.resume()
    stopping.wait()
    scheduler.shutdown(wait=True)
    logger.info("scheduler stopped")
