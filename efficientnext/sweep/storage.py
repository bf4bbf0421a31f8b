"""Where the study lives, and keeping it consistent across worker processes and machines.

`sweep.storage` is an SQLAlchemy URL (sqlite:///, postgresql://, mysql://) or a path ending in .log
(Optuna's journal file, for a shared filesystem). Relative paths are resolved against the repository
root. Every worker stamps its trials with host:pid; on start and before each trial a worker fails the
RUNNING trials of dead processes on its own host (a sweep killed with -9 resumes cleanly), and RDB
storages also fail trials whose heartbeat stopped (workers on other machines).
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
from optuna.trial import TrialState

from efficientnext import config
from efficientnext.sweep.records import FAIL_REASON_ATTR, WORKER_ATTR

SQLITE_PREFIX = "sqlite:///"


def local_path(url: str, root: Path) -> Path | None:
    """The file behind a SQLite URL or journal path (absolute), None for a database server."""
    if url.startswith(SQLITE_PREFIX):
        return root / url.removeprefix(SQLITE_PREFIX)
    if url.endswith(".log") and "://" not in url:
        return root / url
    return None


def open_storage(sweep: config.SweepParams, root: Path) -> optuna.storages.BaseStorage:
    url = sweep.storage
    path = local_path(url, root)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if url.endswith(".log") and path is not None:
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise ValueError(f"sweep.storage = {url!r} is neither a database URL nor a journal file path ending in .log")
    engine = {"connect_args": {"timeout": 60}} if path is not None else {}
    heartbeat = {"heartbeat_interval": sweep.heartbeat} if sweep.heartbeat else {}
    with warnings.catch_warnings():  # heartbeat_interval is "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(SQLITE_PREFIX + str(path) if path is not None else url, engine_kwargs=engine, **heartbeat)


class BudgetLock:
    """Serialises 'is budget left? then create a trial' among workers sharing a local or shared-FS storage.

    A database server has no file to lock: there, workers finishing at the same instant may each start
    one trial past n_trials.
    """

    def __init__(self, url: str, root: Path) -> None:
        path = local_path(url, root)
        self._lock = None if path is None else JournalFileOpenLock(f"{path}.budget")
        self._held = False

    def acquire(self) -> None:
        if self._lock is not None:
            self._lock.acquire()
        self._held = True

    def release(self) -> None:
        if self._held and self._lock is not None:
            self._lock.release()
        self._held = False


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker process on this host is gone; return their numbers."""
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
        if worker_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, FAIL_REASON_ATTR, f"worker {worker_host}:{pid} died")
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        failed.append(trial.number)
    return failed
