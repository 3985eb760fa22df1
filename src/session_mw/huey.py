"""Huey: a task runs in the session of the request (or task) that enqueued it.

    from huey import RedisHuey
    from session_mw.huey import install

    huey = RedisHuey("chat")
    install(huey)  # in the module that makes the Huey: the web process and the consumer

    @huey.task()
    def summarize(conversation_id: str) -> None: ...

    def handler(request):  # inside a session (the web adapter opened it)
        summarize(conversation_id)

A task enqueued while a session is open carries its id: in process as the task's
``session_id`` attribute, in the message under the key :data:`KEY` of its keyword arguments,
which the consumer removes before the function is called (so the function's signature stays
as it is; install on both sides, or the consumer hands the function an unexpected argument). On
the consumer the id is validated with the same rule as the HTTP adapters, and the task runs
inside a session with that id and the attributes ``messaging.system``, ``huey.task.name``,
``messaging.message.id`` (the task id) and ``messaging.destination.name`` (the Huey's name).
The session covers the whole execution: the pre- and post-execute hooks, the handlers of the
signals sent while it runs (``executing``, ``error``, ``retrying``...), the body; retries,
pipeline steps (``.then()``, ``.error()``) and whatever the task enqueues keep it.
``immediate=True`` runs tasks the same way, in process, inside the enqueuing code's context:
there a refused id leaves the task in the session that enqueued it, which is current anyway.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

from huey import Huey

from session_mw._tasks import Secret, TaskSessions, Validator, outgoing

__all__ = ["ATTRIBUTE", "KEY", "install"]

#: The key of a task message's keyword arguments that carries the session id to the consumer.
KEY = "session_mw.session_id"  # a dot: never a parameter name of the function
#: The task attribute that holds the id in process.
ATTRIBUTE = "session_id"
_WHERE = f"{KEY} task argument"

_installed: weakref.WeakSet[Any] = weakref.WeakSet()


def install(
    huey: Huey,
    *,
    validator: Validator = None,
    secret: Secret = None,
) -> None:
    """Make ``huey``'s tasks carry the session of whoever enqueues them, and run in it. Call
    it once, before or after the tasks are defined; a second call changes nothing.
    ``validator`` and ``secret`` are the HTTP adapters' options, for the ids the consumer
    accepts (with ``secret``, only ids this service signed): a check called with each id,
    ``(str) -> bool``, and a key (``str`` or ``bytes``) or several, newest first."""
    if huey in _installed:
        return
    sessions = TaskSessions("huey", _WHERE, "install", validator, secret)
    serialize, deserialize, execute = huey.serialize_task, huey.deserialize_task, huey.execute

    # Huey's message has a fixed set of fields, none of them free but the arguments: the id
    # rides in the keyword arguments of the message only, never of the task or the function.
    def serialize_task(task: Any) -> Any:
        session_id = _carried(task)
        if session_id is None:
            return serialize(task)
        message = copy.copy(task)  # its own kwargs: the task object is left as it is
        message.kwargs = {**task.kwargs, KEY: session_id}
        return serialize(message)

    def deserialize_task(data: Any) -> Any:
        task = deserialize(data)
        setattr(task, ATTRIBUTE, task.kwargs.pop(KEY, None))
        return task

    # Hooks can't bracket a task: Huey skips the post-execute hooks when a pre-execute hook
    # cancels it, on KeyboardInterrupt, and when storing its result raises, so a session opened
    # in a pre-execute hook would stay set on the consumer's thread for the next task. One
    # ``with`` around the whole execution closes it with its own token on every path.
    def execute_in_session(task: Any, timestamp: Any = None) -> Any:
        name = f"{type(task).__module__}.{task.name}"
        with sessions.running(_carried(task), name, task.id, huey.name) as opened:
            # A retry, re-enqueued from inside, carries the validated id (or none).
            setattr(task, ATTRIBUTE, None if opened is None else opened.id)
            return execute(task, timestamp)

    # Instance attributes: Huey calls these through ``self`` (enqueue, dequeue, the consumer's
    # workers, immediate mode), for tasks defined before install too.
    huey.serialize_task = serialize_task
    huey.deserialize_task = deserialize_task
    huey.execute = execute_in_session
    _installed.add(huey)


def _carried(task: Any) -> str | None:
    """The id ``task`` carries: the one its message held (set on the consumer, then replaced by
    the validated one), else the session current now, at enqueue (``None``: none)."""
    state = vars(task)
    return state[ATTRIBUTE] if ATTRIBUTE in state else outgoing()
