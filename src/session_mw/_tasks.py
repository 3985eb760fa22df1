"""The task-queue side of the pipeline, shared by every queue integration.

A publisher puts the current session's id into the message (:func:`outgoing`); the worker
validates what arrives with the same rules as an HTTP id (signed ids and a custom validator
included, never making an id up) and runs the task inside a session with that id
(:meth:`TaskSessions.begin`, then :meth:`TaskSessions.enter` and :meth:`TaskSessions.exit`, or
:meth:`TaskSessions.running` around a call). Each queue's module holds only where its messages
keep the id and which hooks run around a task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from opentelemetry.util.types import AttributeValue

from session_mw._options import from_keywords
from session_mw._pipeline import Pipeline
from session_mw._scope import Opened, Session, close_session, current_session, open_session

__all__ = ["TaskSessions", "outgoing"]

#: The task integrations' ``validator``: a check called with an incoming id (truthy: accept it).
Validator = Callable[[str], object] | None
#: Their ``secret``: accept only ids this service signed, with one key or several (newest first).
Secret = str | bytes | Sequence[str | bytes] | None


def outgoing() -> str | None:
    """The id a message published now carries: the current session's, or ``None``."""
    opened = current_session()
    return None if opened is None else opened.id


class TaskSessions:
    """The worker side: which id a task's message names, and the task's session.

    :param system: the queue's name (``"rq"``), for ``messaging.system``.
    :param where: where messages carry the id, for warnings (``"session_id job meta"``).
    :param owner: the public call that made it, for configuration errors.
    """

    __slots__ = ("_pipeline", "_where", "system")

    def __init__(
        self,
        system: str,
        where: str,
        owner: str,
        validator: Validator = None,
        secret: Secret = None,
    ) -> None:
        options = {"validator": validator, "secret": secret, "issue_ids": False}
        # issue_ids=False: a worker never makes an id up; a task without a valid one has none.
        self._pipeline: Pipeline[None] = Pipeline(from_keywords(options, owner))
        self._where = where
        self.system = system

    def begin(
        self, raw: object, task_name: str, task_id: object = None, queue: str | None = None
    ) -> Session | None:
        """The session a task whose message carried ``raw`` runs in, or ``None``: published
        outside any session, or an invalid id (warned about without its value)."""
        if raw is None:
            return None
        session_id = self._pipeline.choose(str(raw), self._where)
        if session_id is None:
            return None
        attributes: dict[str, AttributeValue] = {
            "messaging.system": self.system,
            f"{self.system}.task.name": task_name,
        }
        if task_id is not None:
            attributes["messaging.message.id"] = str(task_id)
        if queue is not None:
            attributes["messaging.destination.name"] = queue
        return Session(session_id, attributes)

    @staticmethod
    def enter(opened: Session) -> Opened:
        """Make ``opened`` current; the span current now (the queue instrumentation's task
        span, when there is one) gets ``session.id``."""
        return open_session(opened, mark_span=True)

    exit = staticmethod(close_session)

    @contextmanager
    def running(
        self, raw: object, task_name: str, task_id: object = None, queue: str | None = None
    ) -> Iterator[Session | None]:
        """The task's session for the length of a ``with`` block (``None``: no session)."""
        opened = self.begin(raw, task_name, task_id, queue)
        if opened is None:
            yield None
            return
        entered = self.enter(opened)
        try:
            yield opened
        finally:
            close_session(entered)
