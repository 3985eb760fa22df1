"""Celery: a task runs in the session of the request (or task) that published it.

    from session_mw.celery import install

    app = Celery("chat")
    install(app)  # anywhere: before or after the app's tasks are defined, used or finalized

Publishing while a session is open puts its id in the message header ``session_id``. On the
worker the id is validated with the same rule as the HTTP adapters, and the task body runs inside
a session with that id and the attributes ``celery.task.name`` and ``celery.task.id``. Subtasks,
chains, groups and retries published from inside a task are published in its session, so they
keep it. In eager mode (``apply()``, ``task_always_eager``) the task runs in the caller's
session, its attributes and those two.

Every task of the app gets the session, whenever and however it was made: defined and used
before ``install`` (pytest collection, a read of ``task.name``), made by ``app.finalize()``,
a ``@shared_task``, a ``base=`` class of its own, Django's ``autodiscover_tasks()``, or
registered after ``install``. ``install`` moves each task in the app's registry, and each task
registered from then on, to a subclass of its own class whose ``__call__`` opens the session.
Celery's tracer calls a task with its own ``__call__`` through that method, between the
``task_prerun`` and ``task_postrun`` signals: OpenTelemetry's Celery instrumentation attaches
the task's span in the first and detaches it in the second, so the session opens after it and
closes before it, in whichever order the two were installed, and the span gets ``session.id``.
"""

from __future__ import annotations

import inspect
import types
import weakref
from collections.abc import Mapping
from typing import Any

from celery import Celery, Task, current_task
from celery.app import trace as celery_trace
from celery.app.registry import TaskRegistry
from celery.signals import before_task_publish
from opentelemetry.util.types import AttributeValue

from session_mw._options import from_keywords
from session_mw._pipeline import Pipeline
from session_mw._scope import Session, close_session, current_session, open_session
from session_mw._tasks import Secret, Validator

__all__ = ["HEADER", "install"]

#: The message header that carries the session id from publisher to worker.
HEADER = "session_id"
_WHERE = f"{HEADER} task header"
# Where a task's request keeps its validated id, for what the worker publishes after the body
# returned (the next task of a chain, callbacks): the session is closed by then.
_VALIDATED = "session_mw_id"
# Where a task keeps its app's id policy (validator, secret).
_POLICY = "_session_mw_policy"

_installed: weakref.WeakSet[Celery[Any]] = weakref.WeakSet()


def install(
    app: Celery[Any],
    *,
    validator: Validator = None,
    secret: Secret = None,
) -> None:
    """Make ``app``'s tasks carry the session of whoever publishes them. A second call changes
    nothing. ``validator`` and ``secret`` are the HTTP adapters' options, for the ids a worker
    accepts (with ``secret``, only ids this service signed): a check called with each id,
    ``(str) -> bool``, and a key (``str`` or ``bytes``) or several, newest first.

    Call it at any point: it reaches the tasks the app has made already (also after
    ``app.finalize()``, also in a worker that has started) and every task registered later.
    The app's ``Task`` class is left as it is.
    """
    if app in _installed:
        return
    # issue_ids=False: a worker never makes an id up; a task without a valid one has no session.
    policy: Pipeline[None] = Pipeline(
        from_keywords({"validator": validator, "secret": secret, "issue_ids": False}, "install")
    )
    # Every task reaches a worker (and apply()) through the app's registry: the decorators
    # evaluated later, @shared_task and the built-ins when the app finalizes, register_task()
    # and autodiscovered modules all register with registry[name] = task. The registry, not
    # app.tasks, which would finalize the app now.
    registry: TaskRegistry = vars(app)["_tasks"]
    registry.__class__ = _adopting(type(registry), policy)
    for task in list(registry.values()):
        _adopt(task, policy)
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


class _InSession(Task):  # type: ignore[type-arg]  # Celery < 5.5: not subscriptable
    """Put ahead of a task's own class (:func:`_session_class`): the body runs in the session
    its message names. Celery's tracer calls the task itself, not ``run``, once its class has
    a ``__call__`` of its own (``task_has_custom``), inside the ``task_prerun``/``task_postrun``
    bracket where OpenTelemetry's instrumentation attaches and detaches the task's span: the
    session opens after and closes before it, so contexts nest, and the span is current to be
    marked."""

    _session_mw_policy: Pipeline[None] | None = None  # set on each task by _adopt

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        raw = request.get(HEADER)
        policy = self._session_mw_policy
        caller: Mapping[str, AttributeValue] = {}
        if raw is not None and policy is not None:  # from a message: validated
            session_id = policy.choose(str(raw), _WHERE)  # None: invalid (warned)
        elif request.is_eager and (current := current_session()) is not None:
            # apply(): the task runs inline, in the caller's session (with its attributes).
            session_id, caller = current.id, current.attributes
        else:  # published outside any session, or called as a plain function
            session_id = None
        if session_id is None:
            return super().__call__(*args, **kwargs)
        setattr(request, _VALIDATED, session_id)
        attributes: dict[str, AttributeValue] = {
            **caller,
            "celery.task.name": self.name,
            "celery.task.id": str(request.id),
        }
        opened = open_session(Session(session_id, attributes), mark_span=True)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            close_session(opened)

    def push_request(self, *args: Any, **kwargs: Any) -> None:
        # Task.__call__ pushes a request of its own around the body. Before Celery 5.5 that
        # request was blank once a class overrides __call__ (as this one does), unless the
        # worker's stack protection was installed: eager tasks and in-process test workers
        # then lost their id, retries and eagerness, and a retry went to the broker or
        # nowhere. Celery 5.5 carries the current request over; so does this.
        super().push_request(*args, **{**self.request.__dict__, **kwargs})


def _session_class(base: type[Any]) -> type[Any]:
    # One per task, as Celery makes one class per task; named as the task's class: Celery
    # pickles a task as its name and module.
    namespace = {
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "__doc__": base.__doc__,
    }
    return types.new_class(
        base.__name__, (_InSession, base), exec_body=lambda body: body.update(namespace)
    )


def _adopt(task: Task[Any, Any], policy: Pipeline[None]) -> None:
    """Make ``task`` run in its message's session, with ``policy`` for the ids it accepts."""
    setattr(task, _POLICY, policy)
    if isinstance(task, _InSession):
        return
    # A worker in this process may have built the task's tracer already (at consumer start; in
    # a pool process, before worker_process_init), for the class the task has now: unless that
    # class has a __call__ of its own (or `celery worker`'s stack protection makes it look so),
    # the tracer calls ``run`` directly, past the one it is about to get.
    stale = vars(task).get("__trace__")
    calls_run = stale is not None and not celery_trace.task_has_custom(task, "__call__")
    # Its own class, not app.Task: a task made before install, or from a base= class of its
    # own, never saw app.Task. The instance keeps its attributes (what the worker and OTel's
    # instrumentation keep on it) and its class's (inherited).
    task.__class__ = _session_class(task.__class__)
    if calls_run:  # rebuilt as the worker builds it
        app = task.app
        hostname = _hostname(stale)
        task.__trace__ = celery_trace.build_tracer(task.name, task, app.loader, hostname, app=app)


def _hostname(tracer: Any) -> str | None:
    """The worker name ``tracer`` was built with (for ``task_track_started``), or ``None``:
    ``build_tracer`` then asks the OS, its default. Through wrappers (``functools.wraps``)."""
    tracer = inspect.unwrap(tracer)
    names = getattr(getattr(tracer, "__code__", None), "co_freevars", ())
    if "hostname" not in names:
        return None
    return str(tracer.__closure__[names.index("hostname")].cell_contents)


def _adopting(registry: type[TaskRegistry], policy: Pipeline[None]) -> type[TaskRegistry]:
    class Adopting(registry):  # type: ignore[misc,valid-type]
        """An installed app's task registry: a task is adopted as it is registered."""

        def __setitem__(self, name: str, task: Task[Any, Any]) -> None:
            _adopt(task, policy)
            super().__setitem__(name, task)

    Adopting.__qualname__ = Adopting.__name__ = registry.__name__
    Adopting.__module__ = registry.__module__
    return Adopting
