"""Run a user's code where it cannot take the checker down with it.

Every check of someone else's code (``check_gradients``, ``check_layer``,
``check_optimizer``, a campaign's ``target``) calls it through a ``Sandbox``:

* **a child process** (``isolate=True``, the default on POSIX systems): a
  fresh Python that imports NumPy and the user's functions, never jax.  The
  functions travel by name (``"my_net.py:backprop"``, loaded there, so even
  the file's top-level code runs there) or pickled by value with cloudpickle
  (a function of a notebook, a test file or a closure).  ``sys.exit``,
  ``os._exit``, a segfault, a ``MemoryError`` or an endless loop ends the
  *call*, with a verdict, never the checker;
* **a time limit per call** (``timeout`` seconds, default ``DEFAULT_TIMEOUT``):
  past it the child is killed and a new one serves the next call;
* **an optional memory limit** (``memory_limit`` bytes more than the child
  holds once the user's functions are loaded; Linux, ``RLIMIT_AS``);
* **captured output**: what a call prints (``print``, ``sys.stderr``, and
  writes to the file descriptors 1 and 2) is kept, bounded, in its
  ``CallRecord``; nothing reaches the checker's own stdout;
* **copies**: every argument is the user's own copy, and a write into one is
  found by comparing it with a snapshot taken before the call (a note, never
  a verdict);
* **plain data back**: what a call returns comes back as dicts, lists,
  tuples, NumPy arrays and numbers (anything else as an ``Opaque`` that says
  what it was), unpickled by an allow-list, so no user object ever runs code
  in the checker.  The raw value stays in the child: ``UserFunction.keep``
  hands part of it (a layer's cache) to a later call as it was.

``isolate=False`` runs the same calls in this process, with the same copies,
capture and plain data, but no time or memory limit and no protection from
``os._exit``: for a debugger's breakpoints.

>>> def backprop(params, X, Y):
...     print("computing")
...     params["W1"] += 1.0  # written in place: a note, and our arrays are untouched
...     return {"W1": params["W1"] * 0.0}
>>> import numpy as np
>>> W1 = np.ones((2, 2))
>>> with Sandbox({"backprop": backprop}) as sandbox:
...     call = sandbox.function("backprop", ("params", "X", "Y"))
...     grads = call({"W1": W1}, np.ones((2, 3)), np.ones((1, 3)))
...     record = call.last
>>> grads["W1"].tolist(), W1.tolist()
([[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]])
>>> record.output.text, record.wrote
('computing\\n', ("params['W1']",))

The package, by concern: ``settings`` (``Isolation``), ``sandbox`` (the
checker's side: ``Sandbox``, ``UserFunction``), ``processes`` (starting and
killing children, the spare), ``sending`` (how a function travels),
``child`` (the child's side: ``serve``), ``calls`` (one call: copies,
capture, writes found), ``plain_data`` (what comes back), ``records`` (what
crosses the pipe).
"""

from manual_bp_reference.isolation.calls import KEPT_CALLS
from manual_bp_reference.isolation.child import serve
from manual_bp_reference.isolation.plain_data import (
    MAX_DEPTH,
    Opaque,
    loads_plain,
    plain,
    type_name,
)
from manual_bp_reference.isolation.processes import start_ahead
from manual_bp_reference.isolation.records import (
    NO_OUTPUT,
    PROTOCOL,
    SOURCE_DIGEST,
    CallRecord,
    Kept,
    Output,
    UserCodeError,
    UserCodeLoadError,
    UserCodeStopped,
)
from manual_bp_reference.isolation.sandbox import Sandbox, Source, UserFunction
from manual_bp_reference.isolation.settings import DEFAULT_TIMEOUT, Isolation, can_isolate

__all__ = [
    "DEFAULT_TIMEOUT",
    "KEPT_CALLS",
    "MAX_DEPTH",
    "NO_OUTPUT",
    "PROTOCOL",
    "SOURCE_DIGEST",
    "CallRecord",
    "Isolation",
    "Kept",
    "Opaque",
    "Output",
    "Sandbox",
    "Source",
    "UserCodeError",
    "UserCodeLoadError",
    "UserCodeStopped",
    "UserFunction",
    "can_isolate",
    "loads_plain",
    "plain",
    "serve",
    "start_ahead",
    "type_name",
]
