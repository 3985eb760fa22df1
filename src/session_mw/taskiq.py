"""taskiq: a task runs in the session of whoever kicked it.

    pip install "session-mw[taskiq]"

    from taskiq_redis import ListQueueBroker
    from session_mw.taskiq import SessionMiddleware

    broker = ListQueueBroker("redis://localhost").with_middlewares(SessionMiddleware())

    @broker.task
    async def summarize(conversation: str) -> None:
        ...  # current_session().id is the id of the request that kicked it

    await summarize.kiq("c-1")  # inside a request: the message carries the request's session

Kicking a task while a session is open puts its id in the message label ``session_id``. On the
worker the id is validated with the same rule as the HTTP adapters, and the task runs inside a
session with that id and the attributes ``messaging.system``, ``taskiq.task.name``,
``messaging.message.id`` (the task id) and ``messaging.destination.name`` (the ``queue_name``
label, or the broker's queue). Tasks kicked from inside a task keep its session, and so do
retries (the retry middlewares kick the message again with its labels). A task kicked outside
any session runs without one.

The receiver runs ``pre_execute``, the task and ``post_execute`` in one asyncio task, so the
session opened in ``pre_execute`` is current in the task body, in sync tasks too (taskiq copies
the context into its thread pool; a process pool gets no context, hence no session). Add it after
:class:`taskiq.middlewares.opentelemetry_middleware.OpenTelemetryMiddleware`, so the task's span
is current when the session opens (it gets ``session.id``) and contexts nest.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any, NamedTuple

from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult

from session_mw._scope import Opened
from session_mw._tasks import Secret, TaskSessions, Validator, outgoing

__all__ = ["LABEL", "SessionMiddleware"]

#: The message label that carries the session id from kicker to worker.
LABEL = "session_id"


class _Running(NamedTuple):
    task_id: str
    entered: Opened
    token: Token[_Running | None]


# The session pre_execute entered, for post_execute to close with the same tokens. Local to the
# asyncio task that handles the message (the receiver's callback), where both hooks run; a task
# executed in place inside another (InMemoryBroker(await_inplace=True)) stacks on it.
_running: ContextVar[_Running | None] = ContextVar("session_mw.taskiq.running", default=None)


class SessionMiddleware(TaskiqMiddleware):
    """taskiq middleware: each message carries the kicker's session, and its task runs in it.

    :param validator: a check ``(str) -> bool`` of the ids a worker accepts, as the HTTP adapters'.
    :param secret: a key (``str``, ``bytes``) or several, newest first: only ids it signed pass.

    >>> from taskiq import InMemoryBroker
    >>> broker = InMemoryBroker().with_middlewares(SessionMiddleware())
    """

    def __init__(self, *, validator: Validator = None, secret: Secret = None) -> None:
        super().__init__()
        where = f"{LABEL} message label"
        self._sessions = TaskSessions("taskiq", where, "SessionMiddleware", validator, secret)

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        # A message that has an id keeps it: a retry is kicked with the failed message's labels.
        if LABEL not in message.labels:
            session_id = outgoing()
            if session_id is not None:
                message.labels[LABEL] = session_id
        return message

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        queue = message.labels.get("queue_name") or getattr(self.broker, "queue_name", None)
        opened = self._sessions.begin(
            message.labels.get(LABEL),
            message.task_name,
            message.task_id,
            queue if isinstance(queue, str) else None,
        )
        if opened is not None:
            entered = self._sessions.enter(opened)
            # The first token restores what was there before: None, or the task this one runs
            # in place inside.
            token = _running.set(None)
            _running.set(_Running(message.task_id, entered, token))
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        # The receiver calls it after every task, also one that raised (after on_error, where
        # a retry is kicked while the session is still open).
        running = _running.get()
        if running is None or running.task_id != message.task_id:
            return  # no session was opened for this message
        try:
            self._sessions.exit(running.entered)
        finally:
            _running.reset(running.token)
