"""uWSGI's gevent loop engine: gevent's patch must come before the app, and before otel-uwsgi.

gevent asks to be patched before anything imports ``ssl`` or starts a thread.  uWSGI offers two
moments:

- ``gevent-early-monkey-patch`` patches before the app is loaded (in the master, or in each
  worker with ``lazy-apps``): before ``import otel_uwsgi.auto`` instruments ``requests``,
  ``urllib3`` or ``redis`` (which import ``ssl``), before any thread is started.  The right one
  (and so is the app's own ``monkey.patch_all()`` as its first line, before otel_uwsgi.auto).
- ``gevent-monkey-patch`` patches each worker when its gevent loop starts, after the app and its
  imports were loaded and after the post-fork hooks started their threads: gevent warns in every
  worker (``MonkeyPatchWarning``: ``ssl`` was imported before), and a thread started before the
  patch (the span journal's) ends with a ``KeyError`` traceback from ``threading._delete`` at the
  worker's exit.

No import order in otel-uwsgi's preload can fix the second: instrumenting the HTTP clients
imports ``ssl`` in the master, as the app's own imports do.  Nor can otel-uwsgi patch for it: in
the worker's post-fork hook gevent's scan of existing locks trips over Django's unconfigured lazy
settings (imported to instrument Django, in a Flask app too) and the worker dies; in the master it
would patch a process uWSGI was told to leave alone (mules and the spooler forked from it).  So
otel-uwsgi says which option to set (:func:`late_patch_warning`, one warning where the app loads).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Optional

from otel_uwsgi.config import uwsgi_opt


def patches_late(opt: Mapping[str, Any]) -> bool:
    """Whether uWSGI runs the gevent loop engine and patches only when the loop starts, in each worker."""
    return (
        uwsgi_opt.integer(opt, "gevent", 0) > 0
        and uwsgi_opt.flag(opt, "gevent-monkey-patch")
        and not uwsgi_opt.flag(opt, "gevent-early-monkey-patch")
    )


def patched() -> bool:
    """Whether gevent has patched this process already (the app's own ``patch_all()`` included)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def late_patch_warning(opt: Mapping[str, Any]) -> Optional[str]:
    """One line naming the fix when gevent's patch will come after the app was loaded; None when it
    comes in time (or gevent is not used)."""
    if not patches_late(opt) or patched():
        return None
    return (
        "otel-uwsgi: `gevent-monkey-patch` patches each worker only after the app was loaded and "
        "threads were started (gevent's MonkeyPatchWarning in every worker, a KeyError traceback at "
        "each worker's exit); set `gevent-early-monkey-patch = true` instead of `gevent-monkey-patch` "
        f"in {uwsgi_opt.config_file(opt)}, so gevent patches before the app loads"
    )
