"""Celery: a task runs in the session of the request (or task) that published it.

    from session_mw.celery import install

    app = Celery("chat")
    install(app)  # before the app's tasks are defined

Publishing while a session is open puts its id in the message header ``session_id``. On the
worker the id is validated with the same rule as the HTTP adapters, and the task body runs inside
a session with that id and the attributes ``celery.task.name`` and ``celery.task.id``. Subtasks,
chains, groups and retries published from inside a task are published in its session, so they
keep it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery, Task, current_task
from celery.signals import before_task_publish

from session_mw._options import from_keywords
from session_mw._pipeline import Pipeline
from session_mw._scope import Session, close_session, current_session, open_session

__all__ = ["HEADER", "install"]

#: The message header that carries the session id from publisher to worker.
HEADER = "session_id"
_WHERE = f"{HEADER} task header"
# Where a task's request keeps its validated id, for what the worker publishes after the body
# returned (the next task of a chain, callbacks): the session is closed by then.
_VALIDATED = "session_mw_id"

_installed: weakref.WeakSet[Celery[Any]] = weakref.WeakSet()


def install(
    app: Celery[Any],
    *,
    validator: Callable[[str], bool] | None = None,
    secret: str | bytes | Sequence[str | bytes] | None = None,
) -> None:
    """Make ``app``'s tasks carry the session of whoever publishes them. A second call changes
    nothing. ``validator`` and ``secret`` are the HTTP adapters' options, for the ids a worker
    accepts (with ``secret``, only ids this service signed).

    The app's task base class gains the session (``app.Task``): call it before the tasks are
    defined, or it raises ``RuntimeError`` saying so.
    """
    if app in _installed:
        return
    if getattr(app, "finalized", False) and any(
        not name.startswith("celery.") for name in app.tasks
    ):
        raise RuntimeError(
            f"install({app.main!r}) after its tasks were made: call install(app) right after "
            "creating the Celery app, before the modules that define its tasks are imported"
        )
    # issue_ids=False: a worker never makes an id up; a task without a valid one has no session.
    policy: Pipeline[None] = Pipeline(
        from_keywords({"validator": validator, "secret": secret, "issue_ids": False}, "install")
    )
    # The base class of every task the app makes from here on (a property Celery lets us set).
    setattr(app, "Task", _session_task(app.Task, policy))  # noqa: B010
    before_task_publish.connect(_on_publish, weak=False, dispatch_uid="session_mw.celery")
    _installed.add(app)


def _on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None:
        return
    opened = current_session()
    if opened is not None:
        headers.setdefault(HEADER, opened.id)
    elif current_task:  # a chain's next task or a callback, sent once the body has returned
        validated = current_task.request.get(_VALIDATED)
        if validated is not None:
            headers.setdefault(HEADER, validated)


def _session_task(base: type[Task[Any, Any]], policy: Pipeline[None]) -> type[Task[Any, Any]]:
    class SessionTask(base):  # type: ignore[valid-type,misc]
        """Runs the task body inside the session its message names."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            # Around the body, inside Celery's own bracket (task_prerun/postrun, where
            # OpenTelemetry's instrumentation attaches its span): the session opens after and
            # closes before it, so contexts nest, and the task's span is current to be marked.
            raw = self.request.get(HEADER)
            session_id = None if raw is None else policy.choose(str(raw), _WHERE)
            if session_id is None:  # published outside any session, or an invalid id (warned)
                return super().__call__(*args, **kwargs)
            setattr(self.request, _VALIDATED, session_id)
            attributes = {"celery.task.name": self.name, "celery.task.id": str(self.request.id)}
            opened = open_session(Session(session_id, attributes), mark_span=True)
            try:
                return super().__call__(*args, **kwargs)
            finally:
                close_session(opened)

        def push_request(self, *args: Any, **kwargs: Any) -> None:
            # Task.__call__ pushes a request of its own around the body. Before Celery 5.5 that
            # request was blank once a base class overrides __call__ (as this one does), unless
            # the worker's stack protection was installed: eager tasks and in-process test
            # workers then lost their id, retries and eagerness, and a retry went to the
            # broker or nowhere. Celery 5.5 carries the current request over; so does this.
            super().push_request(*args, **{**self.request.__dict__, **kwargs})

    return SessionTask
