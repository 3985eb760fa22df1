"""Dramatiq: an actor's message runs in the session of whoever sent it.

    pip install "session-mw[dramatiq]"

    import dramatiq
    from dramatiq.brokers.redis import RedisBroker
    from session_mw.dramatiq import SessionMiddleware

    broker = RedisBroker()
    broker.add_middleware(SessionMiddleware())  # before or after the actors are declared
    dramatiq.set_broker(broker)

    @dramatiq.actor
    def summarize(conversation: str) -> None:
        ...  # current_session().id is the id of the request that sent it

    summarize.send("c-1")  # inside a request: the message carries the request's session

Sending a message while a session is open puts its id in the message option ``session_id``. On
the worker the id is validated with the same rule as the HTTP adapters, and the actor runs
inside a session with that id and the attributes ``messaging.system``, ``dramatiq.task.name``
(the actor), ``messaging.message.id`` and ``messaging.destination.name`` (the queue). Messages
sent from inside an actor keep its session, and so do the ones Dramatiq's own middleware sends
once the actor has returned: retries (the same message again), pipelines' next message,
``on_success`` / ``on_failure`` / ``on_retry_exhausted`` callbacks. A message sent outside any
session runs without one.

Add it after a tracing middleware, so that the message's span is current when the session opens
(it gets ``session.id``) and contexts nest.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dramatiq import Middleware

from session_mw._scope import Opened
from session_mw._tasks import Secret, TaskSessions, Validator, outgoing

if TYPE_CHECKING:
    from dramatiq import Broker, Message
    from dramatiq.broker import MessageProxy

__all__ = ["OPTION", "SessionMiddleware"]

#: The message option that carries the session id from sender to worker.
OPTION = "session_id"


class _Handling(threading.local):
    """What one worker thread knows of the message it is handling, from
    ``before_process_message`` until the message is acked or rejected."""

    message: MessageProxy | None = None
    # The message's validated id: what the middleware ahead of this one sends after the session
    # has closed (Dramatiq runs after-hooks last-added first) still carries it.
    session_id: str | None = None
    # The session this thread entered for the message, closed with these very tokens.
    entered: Opened | None = None


class SessionMiddleware(Middleware):
    """Broker middleware: each message carries the sender's session, and its actor runs in it.

    :param validator: a check ``(str) -> bool`` of the ids a worker accepts, as the HTTP adapters'.
    :param secret: a key (``str``, ``bytes``) or several, newest first: only ids it signed pass.

    >>> from dramatiq.brokers.stub import StubBroker
    >>> StubBroker().add_middleware(SessionMiddleware())
    """

    def __init__(self, *, validator: Validator = None, secret: Secret = None) -> None:
        where = f"{OPTION} message option"
        self._sessions = TaskSessions("dramatiq", where, "SessionMiddleware", validator, secret)
        self._handling = _Handling()

    def before_enqueue(self, broker: Broker, message: Message[Any], delay: int) -> None:
        # A message that has an id keeps it: a retry is the same message enqueued again.
        if OPTION in message.options:
            return
        session_id = outgoing()
        if session_id is None:
            # Sent by the middleware ahead of this one, after the actor's session closed.
            session_id = self._handling.session_id
        if session_id is not None:
            message.options[OPTION] = session_id

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        handling = self._handling
        # Set before anything that can raise (a custom validator): what this thread sends from
        # here on is never taken for the previous message's.
        handling.message, handling.session_id, handling.entered = message, None, None
        opened = self._sessions.begin(
            message.options.get(OPTION), message.actor_name, message.message_id, message.queue_name
        )
        if opened is not None:
            handling.session_id = opened.id
            handling.entered = self._sessions.enter(opened)

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        # Also when the actor raised, and a second time when an after-hook raised a
        # BaseException (a time limit): only the first closes.
        self._close(message)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        self._close(message)

    def after_ack(self, broker: Broker, message: MessageProxy) -> None:
        self._forget(message)

    def after_nack(self, broker: Broker, message: MessageProxy) -> None:
        self._forget(message)

    def _close(self, message: MessageProxy) -> None:
        handling = self._handling
        if handling.message is not message:
            # Skipped by a middleware ahead of this one before this one saw it: its id was
            # never validated, so nothing sent for it carries one.
            handling.message, handling.session_id = message, None
            return
        entered, handling.entered = handling.entered, None
        if entered is not None:
            self._sessions.exit(entered)

    def _forget(self, message: MessageProxy) -> None:
        # The message is done (every after-hook ran): nothing on this thread is sent for it now.
        handling = self._handling
        if handling.message is message:
            handling.message = handling.session_id = None
