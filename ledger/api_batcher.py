"""The HTTP API's group commit: postings arriving together are committed together (``ledger.command_batch``).

Request threads hand their checked command to one committing thread and wait for its outcome; that thread
takes the first command waiting, gathers more for at most ``GATHER_SECONDS`` (or until ``BATCH_MAX``), runs
them with ``execute_batch`` and answers each request with its own result or refusal. One transaction then
carries a whole burst of postings; a lone posting waits at most ``GATHER_SECONDS`` for company. All writes
go through this one thread, so no two of the API's commands conflict with each other.

``submit_async`` is the same for a coroutine on the server's event loop: the request waits for its outcome
without holding a thread (the posting fast path of ``ledger.api``), so 32 requests in flight are 32
suspended coroutines, not 32 threads taking turns at the GIL. The committing thread keeps the aggregates
its batches saved (``command_batch.AggregateCache``): a loan posted to again is not read again while the
store has no later version of it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable

from ledger.command_batch import AggregateCache, Command, execute_batch

BATCH_MAX = 64
GATHER_SECONDS = 0.002
ANSWER_SECONDS_MAX = 30.0


class CommandBatcher:
    """One committing thread for a ledger; ``submit`` blocks until the command's own outcome."""

    def __init__(self, ledger_of: Callable[[], Any]):
        self._ledger_of = ledger_of
        self._waiting: queue.Queue[tuple[Command, Future[dict[str, Any]]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="gjj-api-committer", daemon=True)
        self._started = threading.Lock()
        self.cache = AggregateCache()  # used by the committing thread only

    def _put(self, command: Command) -> Future[dict[str, Any]]:
        if not self._thread.is_alive():
            with self._started:
                if not self._thread.is_alive():
                    self._thread.start()
        answer: Future[dict[str, Any]] = Future()
        self._waiting.put((command, answer))
        return answer

    def submit(self, command: Command) -> dict[str, Any]:
        """From a request thread: blocks until the command's own outcome (its result, or its refusal raised)."""
        return self._put(command).result(timeout=ANSWER_SECONDS_MAX)

    async def submit_async(self, command: Command) -> dict[str, Any]:
        """From the event loop: the same, awaited (a timer instead of ``asyncio.wait_for``, which makes a
        task per call on Python 3.11)."""
        answer = asyncio.wrap_future(self._put(command))
        expired = []

        def expire() -> None:
            expired.append(True)
            answer.cancel()
        timer = asyncio.get_running_loop().call_later(ANSWER_SECONDS_MAX, expire)
        try:
            return await answer
        except asyncio.CancelledError:
            if not expired:
                raise  # the request itself was cancelled
            raise TimeoutError(f"no answer from the committing thread in {ANSWER_SECONDS_MAX:.0f} s") from None
        finally:
            timer.cancel()

    def _gather(self) -> list[tuple[Command, Future[dict[str, Any]]]]:
        batch = [self._waiting.get()]
        deadline = time.monotonic() + GATHER_SECONDS
        while len(batch) < BATCH_MAX:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._waiting.get(timeout=remaining) if remaining > 0 else self._waiting.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            batch = self._gather()
            try:
                outcomes = execute_batch(self._ledger_of(), [command for command, _ in batch], self.cache)
            except BaseException as error:  # the ledger itself failed: every request hears it
                self.cache.clear()
                for _, answer in batch:
                    _answer(answer, {}, error)
                continue
            for (_, answer), outcome in zip(batch, outcomes):
                _answer(answer, outcome.result or {}, outcome.error)


def _answer(answer: Future[dict[str, Any]], result: dict[str, Any], error: BaseException | None) -> None:
    """A request that stopped waiting (timed out, cancelled) has a cancelled future: nobody to tell. The
    command ran all the same; a bank that posts it again is answered with its first result (BNK-2)."""
    try:
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(result)
    except InvalidStateError:
        pass
