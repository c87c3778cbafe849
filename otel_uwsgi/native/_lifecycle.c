/* A lean span's start and end, and the span journal's on_end, in C: the three Python functions every
 * traced request runs once per span (otel_uwsgi.traces.lean.tracer.LeanTracer._start_py,
 * otel_uwsgi.traces.lean.span.LeanSpan._end_py, otel_uwsgi.traces.journal.processor
 * .JournalSpanProcessor._on_end_py), step for step, without their bytecode: ~2/3 of a span's cost was
 * the interpreter running them.
 *
 * Each one hands the call to its Python twin whenever a step is not the common one (a context that is
 * not a dict, a current span of a type it was not told about, a sampler it cannot decide without
 * Python, a span already ended, a lock someone holds, a span the encoder leaves to Python, a full
 * queue or ring): the twin then decides, logs and counts exactly as before.  A step that only reads
 * and writes plain attributes runs with the GIL held and no Python code in between, so where the twin
 * takes the span's or the journal's lock, this code checks that nobody holds it instead (another
 * thread cannot take it before this returns).  tests/unit/traces/test_lean_span_equals_sdk.py and
 * tests/unit/traces/journal/test_native_journal.py run their cases through both. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <time.h>

#include "_accel.h"

static PyObject *s_native, *s_start_py, *s_end_py, *s_on_end_py, *s_write_py, *s_wake_py, *s_locked,
    *s_record_end_metrics, *s_hooks, *s_chain, *s_span_processors,
    *s_processors, *s_refresh, *s_on_start, *s_on_ending, *s_on_end, *s_span_processor, *s_p_on_ending,
    *s_p_on_start, *s_p_on_end, *s_scope, *s_appended, *s_handed, *s_head, *kw_parent_context, *Zero, *Empty, *Noop, *s_tracer_config, *s_greenlet, *s_on_start_py,
    *s_is_enabled, *s_set_checked_py, *s_update_name_py;

/* ------------------------------------------------------------------------------------- helpers */

static PyObject *now_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) /* time.time_ns()'s clock */
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
}

/* Call self.<method>(*args, **kwargs) with the arguments this C function got (its Python twin). */
static PyObject *twin(PyObject *self, PyObject *method, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames) {
    PyObject *bound = PyObject_GetAttr(self, method);
    if (bound == NULL)
        return NULL;
    PyObject *result = PyObject_Vectorcall(bound, args, (size_t)nargs, kwnames);
    Py_DECREF(bound);
    return result;
}

/* Whether nobody holds a threading.Lock: 1, 0, -1 on error. */
static int lock_free(PyObject *lock) {
    PyObject *held = PyObject_CallMethodNoArgs(lock, s_locked);
    if (held == NULL)
        return -1;
    int free_ = held == Py_False;
    Py_DECREF(held);
    return free_;
}

/* Whether nobody holds a span's own lock (its _lock): 1, 0, -1 on error. */
static int span_lock_free(PyObject *span) {
    PyObject *lock = field_get(span, SF_LOCK);
    if (lock == NULL)
        return -1;
    int free_ = lock_free(lock);
    Py_DECREF(lock);
    return free_;
}

/* Whether a lean span may be changed here, as its Python twin would under its lock: nobody holds the
 * lock and the span has not ended.  1, 0 (the twin waits, or warns), -1 on error. */
int span_changeable(PyObject *span) {
    int free_ = span_lock_free(span);
    if (free_ <= 0)
        return free_;
    PyObject *ended = field_get(span, SF_END_TIME);
    if (ended == NULL)
        return -1;
    Py_DECREF(ended); /* None stays alive: only its identity is compared */
    return ended == Py_None;
}

/* Whether the processors a Hooks object calls are still the chain's (else hooks.refresh()). */
static int hooks_current(PyObject *hooks, PyObject *chain) {
    PyObject *now = PyObject_GetAttr(chain, s_span_processors);
    if (now == NULL)
        return -1;
    PyObject *seen = PyObject_GetAttr(hooks, s_processors);
    if (seen == NULL) {
        Py_DECREF(now);
        return -1;
    }
    int same = now == seen;
    Py_DECREF(now);
    Py_DECREF(seen);
    if (!same) {
        PyObject *done = PyObject_CallMethodNoArgs(hooks, s_refresh);
        if (done == NULL)
            return -1;
        Py_DECREF(done);
    }
    return 0;
}

/* Call each callable of hooks.<list> with (span) or (span, parent_context=context). */
static int call_each(PyObject *hooks, PyObject *list_name, PyObject *span, PyObject *context) {
    PyObject *list = PyObject_GetAttr(hooks, list_name);
    if (list == NULL)
        return -1;
    if (!PyList_Check(list)) {
        Py_DECREF(list);
        PyErr_SetString(PyExc_TypeError, "otel-uwsgi: span hooks must be a list");
        return -1;
    }
    PyObject *args[2] = {span, context};
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *hook = PyList_GET_ITEM(list, i);
        Py_INCREF(hook);
        PyObject *done = context == NULL ? PyObject_Vectorcall(hook, args, 1, NULL)
                                         : PyObject_Vectorcall(hook, args, 1, kw_parent_context);
        Py_DECREF(hook);
        if (done == NULL) {
            Py_DECREF(list);
            return -1;
        }
        Py_DECREF(done);
    }
    Py_DECREF(list);
    return 0;
}

static int set(PyObject *obj, PyObject *name, PyObject *value) { return PyObject_SetAttr(obj, name, value); }

/* ------------------------------------------------------------------------------------- the start */

/* The state LeanTracer hands over (LeanTracer._native), by position. */
enum {
    ST_TRACER,           /* the SDK tracer: its _is_enabled() */
    ST_SPAN_CLASS,       /* the tracer's LeanSpan subclass */
    ST_MAX_ATTRIBUTES,   /* SpanLimits.max_span_attributes: int or None */
    ST_ROOT_DECISION,    /* the decision of every root span, or None */
    ST_PARENT_DECISIONS, /* (remote sampled, remote not, local sampled, local not) decisions, or None */
    ST_DECIDE,           /* decide(parent, trace_id) */
    ST_SAMPLE,           /* Decision.RECORD_AND_SAMPLE */
    ST_DROP,             /* Decision.DROP */
    ST_RANDOM_IDS,       /* the generator's is_trace_id_random() */
    ST_FLAGS,            /* TraceFlags: (sampled, sampled+random, unsampled, unsampled+random) */
    ST_GETRANDBITS,      /* random.getrandbits */
    ST_ALLOCATE_LOCK,    /* threading.Lock */
    ST_NON_RECORDING,    /* NonRecordingSpan */
    ST_SPAN_KEY,         /* the context key of the current span */
    ST_KNOWN_SPANS,      /* {span type: True}: types whose get_span_context() returns their _context */
    ST_HOOKS,            /* the tracer's Hooks */
    ST_BOUNDED,          /* BoundedAttributes */
    ST_TRACE_STATE,      /* DEFAULT_TRACE_STATE */
    ST_IS_ENABLED,       /* tracer._is_enabled, or None: read tracer._tracer_config.is_enabled */
    ST_GET_CURRENT,      /* opentelemetry.context.get_current (or the ContextVar's get): for context=None */
    ST_SIZE
};

static PyObject *random_id(PyObject *getrandbits, int bits) {
    PyObject *n = PyLong_FromLong(bits);
    if (n == NULL)
        return NULL;
    for (;;) {
        PyObject *id = PyObject_CallOneArg(getrandbits, n);
        if (id == NULL || PyObject_IsTrue(id)) { /* 0 is the invalid id: draw again, as the SDK does */
            Py_DECREF(n);
            return id;
        }
        Py_DECREF(id);
    }
}

/* LeanTracer.start_span(self, name, context=None, kind=INTERNAL, attributes=None, start_time=None). */
PyObject *lean_start(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = {"name", "context", "kind", "attributes", "start_time"};
    PyObject *given[5] = {NULL, Py_None, NULL, Py_None, Py_None};
    if (nargs < 1)
        goto python_no_self;
    if (nargs > 6) /* too many arguments: the twin raises Python's own TypeError */
        goto python;
    PyObject *self = args[0];
    for (Py_ssize_t i = 1; i < nargs; i++)
        given[i - 1] = args[i];
    if (kwnames != NULL) {
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(kwnames); k++) {
            int found = 0;
            for (int j = 0; j < 5; j++) {
                if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, k), names[j]) == 0) {
                    if (j < nargs - 1)
                        goto python;
                    given[j] = args[nargs + k];
                    found = 1;
                }
            }
            if (!found)
                goto python;
        }
    }
    if (given[0] == NULL || given[2] == NULL) /* no name, or the default kind: Python's defaults */
        goto python;
    PyObject *name = given[0], *context = given[1], *kind = given[2], *attributes = given[3],
             *start_time = given[4];

    PyObject *state = PyObject_GetAttr(self, s_native);
    if (state == NULL)
        return NULL;
    if (SpanContextType == NULL || !PyTuple_Check(state) || PyTuple_GET_SIZE(state) != ST_SIZE ||
        !(context == Py_None || PyDict_Check(context)) ||
        !(attributes == Py_None || PyDict_CheckExact(attributes))) {
        Py_DECREF(state);
        goto python;
    }
#define ST(i) PyTuple_GET_ITEM(state, i)
    PyObject *span = NULL, *trace_id = NULL, *span_id = NULL, *span_context = NULL, *parent = NULL,
             *copy = NULL, *bounded = NULL, *lock = NULL, *time = NULL, *hooks = ST(ST_HOOKS),
             *current_context = NULL, *lookup = context;
    /* tracing off for this tracer: the SDK's NonRecordingSpan, from Python */
    PyObject *enabled;
    if (ST(ST_IS_ENABLED) == Py_None) { /* the SDK's _is_enabled() is `return self._tracer_config.is_enabled` */
        PyObject *config = PyObject_GetAttr(ST(ST_TRACER), s_tracer_config);
        enabled = config ? PyObject_GetAttr(config, s_is_enabled) : NULL;
        Py_XDECREF(config);
    } else {
        enabled = PyObject_CallNoArgs(ST(ST_IS_ENABLED));
    }
    if (enabled == NULL)
        goto error;
    int on = PyObject_IsTrue(enabled);
    Py_DECREF(enabled);
    if (on <= 0) {
        if (on < 0)
            goto error;
        goto python_state;
    }
    if (attributes != Py_None && PyDict_GET_SIZE(attributes)) {
        PyObject *max = ST(ST_MAX_ATTRIBUTES);
        if (max != Py_None && PyDict_GET_SIZE(attributes) > PyLong_AsSsize_t(max))
            goto python_state;
        if (PyErr_Occurred())
            goto error;
        PyObject *plain = plain_attributes(NULL, attributes);
        if (plain == NULL)
            goto error;
        Py_DECREF(plain);
        if (plain != Py_True)
            goto python_state;
    }
    /* the parent: the current span of context, as trace.get_current_span(context).get_span_context() */
    if (context == Py_None) { /* the current context, as get_current_span(None) reads it */
        if ((current_context = PyObject_CallNoArgs(ST(ST_GET_CURRENT))) == NULL)
            goto error;
        if (!PyDict_Check(current_context))
            goto python_state;
        lookup = current_context;
    }
    PyObject *current = PyDict_GetItemWithError(lookup, ST(ST_SPAN_KEY)); /* borrowed */
    PyObject *parent_context = NULL;
    if (current == NULL) {
        if (PyErr_Occurred())
            goto error;
    } else {
        PyObject *known = PyDict_GetItemWithError(ST(ST_KNOWN_SPANS), (PyObject *)Py_TYPE(current));
        if (known != Py_True) {
            if (PyErr_Occurred())
                goto error;
            goto python_state;
        }
        parent_context = field_get(current, SF_CONTEXT);
        if (parent_context == NULL)
            goto error;
        if (Py_TYPE(parent_context) != (PyTypeObject *)SpanContextType || PyTuple_GET_SIZE(parent_context) != 6) {
            Py_DECREF(parent_context);
            goto python_state;
        }
        int valid = PyObject_IsTrue(PyTuple_GET_ITEM(parent_context, 5));
        if (valid < 0) {
            Py_DECREF(parent_context);
            goto error;
        }
        if (valid && !PyLong_CheckExact(PyTuple_GET_ITEM(parent_context, 0))) {
            Py_DECREF(parent_context);
            goto python_state;
        }
        if (valid)
            parent = parent_context; /* owned */
        else
            Py_DECREF(parent_context);
    }
    int random = 0;
    PyObject *trace_state;
    long parent_flags = 0;
    if (parent != NULL) {
        trace_id = PyTuple_GET_ITEM(parent, 0);
        Py_INCREF(trace_id);
        parent_flags = PyLong_AsLong(PyTuple_GET_ITEM(parent, 3));
        if (parent_flags == -1 && PyErr_Occurred())
            goto error;
        random = (parent_flags & 2) != 0; /* TraceFlags.RANDOM_TRACE_ID */
        trace_state = PyTuple_GET_ITEM(parent, 4);
    } else {
        trace_id = random_id(ST(ST_GETRANDBITS), 128);
        if (trace_id == NULL)
            goto error;
        random = ST(ST_RANDOM_IDS) == Py_True;
        trace_state = ST(ST_TRACE_STATE);
    }
    /* the sampler's decision */
    PyObject *decision; /* borrowed, or owned in `decided` */
    PyObject *decided = NULL;
    if (parent == NULL && ST(ST_ROOT_DECISION) != Py_None) {
        decision = ST(ST_ROOT_DECISION);
    } else if (parent != NULL && ST(ST_PARENT_DECISIONS) != Py_None) {
        int remote = PyObject_IsTrue(PyTuple_GET_ITEM(parent, 2));
        if (remote < 0)
            goto error;
        decision = PyTuple_GET_ITEM(ST(ST_PARENT_DECISIONS), (remote ? 0 : 2) + ((parent_flags & 1) ? 0 : 1));
    } else {
        PyObject *call[2] = {parent != NULL ? parent : Py_None, trace_id};
        decided = PyObject_Vectorcall(ST(ST_DECIDE), call, 2, NULL);
        if (decided == NULL)
            goto error;
        decision = decided;
    }
    int sampled = decision == ST(ST_SAMPLE);
    int dropped = decision == ST(ST_DROP);
    Py_XDECREF(decided); /* the decisions are enum members: they outlive this call */
    PyObject *flags = PyTuple_GET_ITEM(ST(ST_FLAGS), (sampled ? 0 : 2) + (random ? 1 : 0));
    span_id = random_id(ST(ST_GETRANDBITS), 64);
    if (span_id == NULL)
        goto error;
    uint64_t hi, lo;
    int valid = u128(trace_id, &hi, &lo) == 0 && (hi | lo) != 0; /* span ids drawn here: in (0, 2**64) */
    span_context = PyType_GenericAlloc((PyTypeObject *)SpanContextType, 6);
    if (span_context == NULL)
        goto error;
    PyObject *items[6] = {trace_id, span_id, Py_False, flags, trace_state, valid ? Py_True : Py_False};
    for (int i = 0; i < 6; i++) {
        Py_INCREF(items[i]);
        PyTuple_SET_ITEM(span_context, i, items[i]);
    }
#if PY_VERSION_HEX >= 0x030E0000
    /* 3.14 caches a tuple's hash, -1 until computed; the zeroed memory GenericAlloc gives would read as
     * a cached hash of 0 (tuple.__new__ resets it the same way) */
    ((PyTupleObject *)span_context)->ob_hash = -1;
#endif
    if (dropped) {
        span = PyObject_CallOneArg(ST(ST_NON_RECORDING), span_context);
        goto done;
    }
    /* the recording span: the fields LeanTracer._start_py sets, in its order */
    span = PyBaseObject_Type.tp_new((PyTypeObject *)ST(ST_SPAN_CLASS), Empty, NULL);
    if (span == NULL || field_set(span, SF_NAME, name) || field_set(span, SF_CONTEXT, span_context) ||
        field_set(span, SF_KIND, kind) || field_set(span, SF_PARENT, parent != NULL ? parent : Py_None) ||
        field_set(span, SF_END_TIME, Py_None))
        goto error;
    if ((lock = PyObject_CallNoArgs(ST(ST_ALLOCATE_LOCK))) == NULL || field_set(span, SF_LOCK, lock))
        goto error;
    Py_CLEAR(lock);
    copy = attributes != Py_None ? PyDict_Copy(attributes) : PyDict_New();
    bounded = copy ? PyBaseObject_Type.tp_new((PyTypeObject *)ST(ST_BOUNDED), Empty, NULL) : NULL;
    if (bounded == NULL || field_set(bounded, AF_DICT, copy) || field_set(bounded, AF_MAXLEN, ST(ST_MAX_ATTRIBUTES)) ||
        field_set(bounded, AF_DROPPED, Zero) || field_set(bounded, AF_MAX_VALUE_LEN, Py_None))
        goto error;
    if ((lock = PyObject_CallNoArgs(ST(ST_ALLOCATE_LOCK))) == NULL || field_set(bounded, AF_LOCK, lock) ||
        field_set(bounded, AF_IMMUTABLE, Py_False) || field_set(span, SF_ATTRIBUTES, bounded))
        goto error;
    if (start_time == Py_None) {
        if ((time = now_ns()) == NULL)
            goto error;
        start_time = time;
    }
    if (field_set(span, SF_START_TIME, start_time))
        goto error;
    /* the processors' on_start, as Hooks lists them */
    PyObject *chain = PyObject_GetAttr(hooks, s_chain);
    if (chain == NULL)
        goto error;
    int failed;
    if (chain != Py_None) {
        failed = hooks_current(hooks, chain) || call_each(hooks, s_on_start, span, context);
    } else {
        PyObject *processor = PyObject_GetAttr(span, s_span_processor);
        PyObject *call[3] = {processor, span, context};
        PyObject *done = processor ? PyObject_VectorcallMethod(s_p_on_start, call, 2, kw_parent_context) : NULL;
        Py_XDECREF(processor);
        failed = done == NULL;
        Py_XDECREF(done);
    }
    Py_DECREF(chain);
    if (failed)
        goto error;
done:
    Py_XDECREF(trace_id);
    Py_XDECREF(span_id);
    Py_XDECREF(span_context);
    Py_XDECREF(parent);
    Py_XDECREF(copy);
    Py_XDECREF(bounded);
    Py_XDECREF(lock);
    Py_XDECREF(time);
    Py_XDECREF(current_context);
    Py_DECREF(state);
    return span;
error:
    Py_CLEAR(span);
    goto done;
python_state:
    Py_XDECREF(parent);
    Py_XDECREF(current_context);
    Py_DECREF(state);
#undef ST
python:
    return twin(args[0], s_start_py, args + 1, nargs - 1, kwnames);
python_no_self:
    PyErr_SetString(PyExc_TypeError, "start_span() needs the tracer");
    return NULL;
}

/* ------------------------------------------------------------------------------------- the end */

/* LeanSpan.end(self, end_time=None). */
PyObject *lean_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "end() needs the span");
        return NULL;
    }
    PyObject *self = args[0], *end_time = nargs > 1 ? args[1] : Py_None;
    if (nargs > 2 || (kwnames != NULL && (PyTuple_GET_SIZE(kwnames) != 1 || nargs != 1 ||
                                          PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "end_time"))))
        return twin(self, s_end_py, args + 1, nargs - 1, kwnames);
    if (kwnames != NULL)
        end_time = args[1];
    int changeable = span_changeable(self);
    if (changeable < 0)
        return NULL;
    PyObject *start = changeable ? field_get(self, SF_START_TIME) : NULL;
    int lean = start != NULL && start != Py_None;
    Py_XDECREF(start);
    if (PyErr_Occurred())
        return NULL;
    if (!lean) /* held by another thread, not started, or ended already: the twin waits, raises or warns */
        return twin(self, s_end_py, args + 1, nargs - 1, kwnames);
    PyObject *time = end_time != Py_None ? (Py_INCREF(end_time), end_time) : now_ns();
    if (time == NULL)
        return NULL;
    int failed = field_set(self, SF_END_TIME, time);
    Py_DECREF(time);
    if (failed)
        return NULL;
    PyObject *attributes = field_get(self, SF_ATTRIBUTES);
    if (attributes == NULL || field_set(attributes, AF_IMMUTABLE, Py_True)) {
        Py_XDECREF(attributes);
        return NULL;
    }
    Py_DECREF(attributes);
    /* the span metrics the tracer records at the end (a no-op function when they are off) */
    PyObject *record = PyObject_GetAttr(self, s_record_end_metrics);
    if (record == NULL)
        return NULL;
    PyObject *done = NULL;
    if (record != Noop) { /* Noop: configure_lifecycle()'s */
        done = PyObject_CallNoArgs(record);
        failed = done == NULL;
        Py_XDECREF(done);
    }
    Py_DECREF(record);
    if (failed)
        return NULL;
    PyObject *hooks = PyObject_GetAttr(self, s_hooks);
    PyObject *chain = hooks ? PyObject_GetAttr(hooks, s_chain) : NULL;
    if (chain == NULL) {
        Py_XDECREF(hooks);
        return NULL;
    }
    if (chain != Py_None) {
        failed = hooks_current(hooks, chain) || call_each(hooks, s_on_ending, self, NULL) ||
                 call_each(hooks, s_on_end, self, NULL);
    } else {
        PyObject *processor = PyObject_GetAttr(self, s_span_processor);
        failed = processor == NULL;
        PyObject *methods[2] = {s_p_on_ending, s_p_on_end};
        for (int i = 0; i < 2 && !failed; i++) {
            done = PyObject_CallMethodOneArg(processor, methods[i], self);
            failed = done == NULL;
            Py_XDECREF(done);
        }
        Py_XDECREF(processor);
    }
    Py_DECREF(chain);
    Py_DECREF(hooks);
    if (failed)
        return NULL;
    Py_RETURN_NONE;
}

/* LeanSpan.set_checked_attributes(self, attributes): the fast path's own attributes added in one
 * dict update, when that is all the twin would do (span not ended, room for them, no key already
 * set, plain values); everything else, and a lock another thread holds, goes to the twin. */
PyObject *lean_set_checked(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "set_checked_attributes() needs the span");
        return NULL;
    }
    PyObject *self = args[0];
    if (nargs != 2 || kwnames != NULL || !PyDict_CheckExact(args[1]))
        return twin(self, s_set_checked_py, args + 1, nargs - 1, kwnames);
    PyObject *attributes = args[1];
    int changeable = span_changeable(self);
    if (changeable < 0)
        return NULL;
    if (!changeable)
        return twin(self, s_set_checked_py, args + 1, nargs - 1, kwnames);
    PyObject *bounded = field_get(self, SF_ATTRIBUTES);
    PyObject *current = bounded ? field_get(bounded, AF_DICT) : NULL;
    PyObject *maxlen = current ? field_get(bounded, AF_MAXLEN) : NULL;
    Py_XDECREF(bounded);
    if (PyErr_Occurred()) {
        Py_XDECREF(current);
        Py_XDECREF(maxlen);
        return NULL;
    }
    int direct = maxlen != NULL && PyDict_CheckExact(current);
    if (direct && maxlen != Py_None) {
        Py_ssize_t limit = PyLong_AsSsize_t(maxlen);
        if (limit == -1 && PyErr_Occurred())
            PyErr_Clear(), direct = 0;
        else if (PyDict_GET_SIZE(current) + PyDict_GET_SIZE(attributes) > limit)
            direct = 0;
    }
    Py_XDECREF(maxlen);
    if (direct) { /* plain first: then every key is an exact str, whose comparisons run no Python */
        PyObject *plain = plain_attributes(NULL, attributes);
        if (plain == NULL) {
            Py_DECREF(current);
            return NULL;
        }
        direct = plain == Py_True;
        Py_DECREF(plain);
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (direct && PyDict_Next(attributes, &pos, &key, &value)) {
        int has = PyDict_Contains(current, key);
        if (has < 0) {
            Py_DECREF(current);
            return NULL;
        }
        direct = !has; /* a key already set moves to the end: the SDK's way, in the twin */
    }
    if (!direct) {
        Py_XDECREF(current);
        return twin(self, s_set_checked_py, args + 1, nargs - 1, kwnames);
    }
    int failed = PyDict_Update(current, attributes);
    Py_DECREF(current);
    if (failed)
        return NULL;
    Py_RETURN_NONE;
}

/* LeanSpan.update_name(self, name): the name set when the span is not ended and nobody holds its lock;
 * an ended span (the SDK's warning) and a held lock go to the twin. */
PyObject *lean_update_name(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "update_name() needs the span");
        return NULL;
    }
    PyObject *self = args[0];
    if (nargs != 2 || kwnames != NULL)
        return twin(self, s_update_name_py, args + 1, nargs - 1, kwnames);
    int changeable = span_changeable(self);
    if (changeable < 0)
        return NULL;
    if (!changeable)
        return twin(self, s_update_name_py, args + 1, nargs - 1, kwnames);
    if (field_set(self, SF_NAME, args[1]))
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------- the journal */

/* The state JournalSpanProcessor hands over (its _native), by position. */
enum {
    JS_INFLIGHT,     /* span id -> (slot, span, thread, greenlet) */
    JS_FREE,         /* free slot numbers */
    JS_SLOT_AT,      /* slot number -> byte offset of its state word */
    JS_MM,           /* the journal's mmap */
    JS_COUNT_ENDED,  /* ledger's ended counter's __next__ */
    JS_LOCK,         /* the appenders' lock */
    JS_REGION,       /* the Region: its _head */
    JS_RING,         /* (head_at, tail_at, ring_at, capacity) */
    JS_PREFIXES,     /* ship._prefixes: id(scope) -> (scope, record prefix) */
    JS_MAX_QUEUE,    /* otel-bsp-max-queue-size */
    JS_BATCH,        /* the batch size that wakes the shipper */
    JS_ENCODE,       /* True when the C encoder passed its probe */
    JS_LEAN_TYPES,   /* the lean span classes (the encoder's direct path takes them) */
    JS_TAILS,        /* (id(scope), name) -> (scope, slot tail) */
    JS_SERVER,       /* SpanKind.SERVER */
    JS_MODULES,      /* sys.modules: under gevent ("greenlet" there) the Python twin runs */
    JS_SLOT_SIZE,    /* the slot size */
    JS_SIZE
};

/* JournalSpanProcessor.on_end(self, span). */
PyObject *journal_on_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "on_end() needs the processor");
        return NULL;
    }
    if (nargs != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) /* on_end(span=...): as Python takes it */
        return twin(args[0], s_on_end_py, args + 1, nargs - 1, kwnames);
    PyObject *self = args[0], *span = args[1];
    PyObject *state = PyObject_GetAttr(self, s_native);
    if (state == NULL)
        return NULL;
    PyObject *context = NULL, *field = NULL, *result = NULL;
    if (SpanContextType == NULL || !PyTuple_Check(state) || PyTuple_GET_SIZE(state) != JS_SIZE)
        goto python;
#define JS(i) PyTuple_GET_ITEM(state, i)
    context = field_get(span, SF_CONTEXT);
    if (context == NULL)
        goto out;
    if (Py_TYPE(context) != (PyTypeObject *)SpanContextType || PyTuple_GET_SIZE(context) != 6)
        goto python;
    PyObject *span_id = PyTuple_GET_ITEM(context, 1);
    long flags = PyLong_AsLong(PyTuple_GET_ITEM(context, 3));
    uint64_t id = PyLong_AsUnsignedLongLong(span_id);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        goto python;
    }
    /* its in-flight slot, if it had one: cleared and freed */
    if (PyDict_GET_SIZE(JS(JS_INFLIGHT))) {
        PyObject *slot = PyDict_GetItemWithError(JS(JS_INFLIGHT), span_id);
        if (slot == NULL && PyErr_Occurred())
            goto out;
        if (slot != NULL) {
            Py_INCREF(slot);
            if (PyDict_DelItem(JS(JS_INFLIGHT), span_id) < 0) {
                Py_DECREF(slot);
                goto out;
            }
            PyObject *index = PyTuple_GET_ITEM(slot, 0);
            Py_ssize_t number = PyLong_AsSsize_t(index);
            PyObject *at_obj = number >= 0 && number < PyList_GET_SIZE(JS(JS_SLOT_AT))
                                   ? PyList_GET_ITEM(JS(JS_SLOT_AT), number)
                                   : NULL;
            Py_ssize_t at = at_obj ? PyLong_AsSsize_t(at_obj) : -1;
            Py_buffer view;
            if (at >= 0 && PyObject_GetBuffer(JS(JS_MM), &view, PyBUF_WRITABLE) == 0) {
                if (at + 4 <= view.len)
                    memset((char *)view.buf + at, 0, 4); /* Region.clear_slot */
                PyBuffer_Release(&view);
            }
            int failed = PyErr_Occurred() || PyList_Append(JS(JS_FREE), index) < 0;
            Py_DECREF(slot);
            if (failed)
                goto out;
        }
    }
    if (!(flags & 1)) { /* not sampled: nothing to keep */
        result = Py_None;
        Py_INCREF(result);
        goto out;
    }
    /* the record: the scope's prefix and the encoded span, when both come without Python */
    if (JS(JS_ENCODE) != Py_True)
        goto write_py;
    int lean = PySet_Contains(JS(JS_LEAN_TYPES), (PyObject *)Py_TYPE(span));
    if (lean <= 0) {
        if (lean < 0)
            goto out;
        goto write_py;
    }
    PyObject *scope = PyObject_GetAttr(span, s_scope);
    if (scope == NULL)
        goto out;
    PyObject *key = PyLong_FromVoidPtr(scope);
    PyObject *entry = key ? PyDict_GetItemWithError(JS(JS_PREFIXES), key) : NULL;
    Py_XDECREF(key);
    int cached = entry != NULL && PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) == 2 &&
                 PyTuple_GET_ITEM(entry, 0) == scope && PyBytes_CheckExact(PyTuple_GET_ITEM(entry, 1));
    Py_DECREF(scope);
    if (PyErr_Occurred())
        goto out;
    if (!cached)
        goto write_py;
    PyObject *prefix = PyTuple_GET_ITEM(entry, 1);
    Py_INCREF(prefix);
    field = span_field(NULL, span);
    if (field == NULL || !PyBytes_CheckExact(field)) {
        Py_DECREF(prefix);
        PyErr_Clear();
        goto write_py;
    }
    /* under the GIL from here to the end: the appenders' lock must be free, and stays so */
    int free_ = lock_free(JS(JS_LOCK));
    PyObject *appended = free_ > 0 ? PyObject_GetAttr(self, s_appended) : NULL;
    PyObject *handed = appended ? PyObject_GetAttr(self, s_handed) : NULL;
    PyObject *head_obj = handed ? PyObject_GetAttr(JS(JS_REGION), s_head) : NULL;
    long long waiting = 0, max_queue = PyLong_AsLongLong(JS(JS_MAX_QUEUE)), batch = PyLong_AsLongLong(JS(JS_BATCH));
    uint64_t head = 0;
    if (head_obj != NULL) {
        waiting = PyLong_AsLongLong(appended) - PyLong_AsLongLong(handed);
        head = PyLong_AsUnsignedLongLong(head_obj);
    }
    Py_XDECREF(handed);
    Py_XDECREF(head_obj);
    int64_t new_head = -1;
    if (head_obj != NULL && !PyErr_Occurred() && waiting < max_queue) {
        PyObject *ring = JS(JS_RING);
        Py_ssize_t head_at = PyLong_AsSsize_t(PyTuple_GET_ITEM(ring, 0)),
                   tail_at = PyLong_AsSsize_t(PyTuple_GET_ITEM(ring, 1)),
                   ring_at = PyLong_AsSsize_t(PyTuple_GET_ITEM(ring, 2)),
                   capacity = PyLong_AsSsize_t(PyTuple_GET_ITEM(ring, 3));
        Py_buffer view;
        if (!PyErr_Occurred() && PyObject_GetBuffer(JS(JS_MM), &view, PyBUF_WRITABLE) == 0) {
            if (capacity > 0 && ring_at >= 0 && ring_at + capacity <= view.len && head_at >= 0 &&
                head_at + 8 <= view.len && tail_at >= 0 && tail_at + 8 <= view.len)
                new_head = ring_write(view.buf, head_at, tail_at, ring_at, (uint64_t)capacity, head, id,
                                      (const unsigned char *)PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix),
                                      (const unsigned char *)PyBytes_AS_STRING(field), PyBytes_GET_SIZE(field));
            PyBuffer_Release(&view);
        }
    }
    Py_DECREF(prefix);
    if (PyErr_Occurred()) {
        Py_XDECREF(appended);
        goto out;
    }
    if (new_head < 0) { /* a held lock, a full queue or ring: the twin waits, or counts the drop */
        Py_XDECREF(appended);
        goto write_py;
    }
    /* written: count it, as the twin does */
    PyObject *head_now = PyLong_FromUnsignedLongLong((uint64_t)new_head);
    PyObject *appended_now = head_now ? PyLong_FromLongLong(PyLong_AsLongLong(appended) + 1) : NULL;
    Py_DECREF(appended);
    PyObject *counted = appended_now ? PyObject_CallNoArgs(JS(JS_COUNT_ENDED)) : NULL;
    int failed = counted == NULL || set(JS(JS_REGION), s_head, head_now) || set(self, s_appended, appended_now);
    Py_XDECREF(counted);
    Py_XDECREF(head_now);
    Py_XDECREF(appended_now);
    if (failed)
        goto out;
    if (waiting + 1 >= batch) { /* a batch is ready: wake the shipper (Python: an Event) */
        result = PyObject_CallMethodNoArgs(self, s_wake_py);
        goto out;
    }
    result = Py_None;
    Py_INCREF(result);
    goto out;
write_py:
    result = PyObject_CallMethodObjArgs(self, s_write_py, span, span_id, NULL);
    goto out;
python:
    result = PyObject_CallMethodOneArg(self, s_on_end_py, span);
out:
#undef JS
    Py_XDECREF(context);
    Py_XDECREF(field);
    Py_DECREF(state);
    return result;
}

/* JournalSpanProcessor.on_start(self, span, parent_context=None): a server span's in-flight slot. */
PyObject *journal_on_start(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (nargs < 2 || nargs > 3 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) + nargs > 3)) {
        PyErr_SetString(PyExc_TypeError, "on_start(span, parent_context=None)");
        return NULL;
    }
    PyObject *self = args[0], *span = args[1];
    PyObject *state = PyObject_GetAttr(self, s_native);
    if (state == NULL)
        return NULL;
    PyObject *kind = NULL, *scope = NULL, *name = NULL, *key = NULL, *thread = NULL, *span_id = NULL,
             *index = NULL, *value = NULL, *result = NULL;
    if (!PyTuple_Check(state) || PyTuple_GET_SIZE(state) != JS_SIZE)
        goto python;
#define JS(i) PyTuple_GET_ITEM(state, i)
    if ((kind = field_get(span, SF_KIND)) == NULL)
        goto out;
    if (kind != JS(JS_SERVER)) { /* only a server span takes a slot */
        result = Py_None;
        Py_INCREF(result);
        goto out;
    }
    int greenlet = PyDict_Contains(JS(JS_MODULES), s_greenlet);
    PyObject *free_ = JS(JS_FREE);
    if (greenlet != 0 || !PyList_CheckExact(free_)) {
        if (greenlet < 0)
            goto out;
        goto python;
    }
    Py_ssize_t count = PyList_GET_SIZE(free_);
    if (count == 0) { /* more requests in flight than slots: this one is not covered */
        result = Py_None;
        Py_INCREF(result);
        goto out;
    }
    if ((scope = PyObject_GetAttr(span, s_scope)) == NULL || (name = field_get(span, SF_NAME)) == NULL)
        goto out;
    PyObject *id = PyLong_FromVoidPtr(scope);
    key = id ? PyTuple_Pack(2, id, name) : NULL;
    Py_XDECREF(id);
    if (key == NULL)
        goto out;
    PyObject *entry = PyDict_GetItemWithError(JS(JS_TAILS), key); /* borrowed */
    if (entry == NULL || !PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 || PyTuple_GET_ITEM(entry, 0) != scope ||
        !PyBytes_CheckExact(PyTuple_GET_ITEM(entry, 1))) {
        if (PyErr_Occurred())
            goto out;
        goto python; /* the first span of this name: the twin makes and keeps its slot tail */
    }
    index = PyList_GET_ITEM(free_, count - 1); /* self._free.pop() */
    Py_INCREF(index);
    if (PyList_SetSlice(free_, count - 1, count, NULL) < 0)
        goto out;
    Py_ssize_t number = PyLong_AsSsize_t(index);
    PyObject *at = number >= 0 && number < PyList_GET_SIZE(JS(JS_SLOT_AT)) ? PyList_GET_ITEM(JS(JS_SLOT_AT), number) : NULL;
    if (at == NULL || (thread = PyLong_FromUnsignedLong(PyThread_get_thread_ident())) == NULL)
        goto give_back;
    PyObject *call[6] = {JS(JS_MM), at, span, PyTuple_GET_ITEM(entry, 1), thread, JS(JS_SLOT_SIZE)};
    if ((span_id = slot_start(module, call, 6)) == NULL)
        goto give_back;
    if (span_id == Py_None) /* not sampled, or not a shape slot_start knows: the twin decides */
        goto give_back_python;
    if ((value = PyTuple_Pack(4, index, span, thread, Py_None)) == NULL ||
        PyDict_SetItem(JS(JS_INFLIGHT), span_id, value) < 0)
        goto give_back;
    result = Py_None;
    Py_INCREF(result);
    goto out;
give_back_python:
    if (PyList_Append(free_, index) < 0)
        goto out;
    goto python;
give_back: /* an error: the slot goes back and the twin decides (and logs) as it always does */
    PyErr_Clear();
    if (PyList_Append(free_, index) < 0)
        goto out;
    goto python;
python:
    result = twin(self, s_on_start_py, args + 1, nargs - 1, kwnames);
out:
#undef JS
    Py_XDECREF(kind);
    Py_XDECREF(scope);
    Py_XDECREF(name);
    Py_XDECREF(key);
    Py_XDECREF(thread);
    Py_XDECREF(span_id);
    Py_XDECREF(index);
    Py_XDECREF(value);
    Py_DECREF(state);
    return result;
}

/* configure_lifecycle(noop): the function a span's _record_end_metrics is when span metrics are off. */
PyObject *configure_lifecycle(PyObject *module, PyObject *noop) {
    Py_INCREF(noop);
    Py_XSETREF(Noop, noop);
    Py_RETURN_NONE;
}

/* as_method(function): a builtin function that binds like a Python function (instancemethod), so
 * that a class attribute set to it receives the instance first. */
PyObject *as_method(PyObject *module, PyObject *function) { return PyInstanceMethod_New(function); }

int lifecycle_init(void) {
    InternedName names[] = {
        {&s_native, "_native"},
        {&s_start_py, "_start_py"},
        {&s_end_py, "_end_py"},
        {&s_on_end_py, "_on_end_py"},
        {&s_write_py, "_write"},
        {&s_wake_py, "_wake_shipper"},
        {&s_locked, "locked"},
        {&s_record_end_metrics, "_record_end_metrics"},
        {&s_hooks, "_hooks"},
        {&s_chain, "chain"},
        {&s_span_processors, "_span_processors"},
        {&s_processors, "processors"},
        {&s_refresh, "refresh"},
        {&s_on_start, "on_start"},
        {&s_on_ending, "on_ending"},
        {&s_on_end, "on_end"},
        {&s_span_processor, "_span_processor"},
        {&s_p_on_ending, "_on_ending"},
        {&s_p_on_start, "on_start"},
        {&s_p_on_end, "on_end"},
        {&s_scope, "_instrumentation_scope"},
        {&s_appended, "_appended"},
        {&s_handed, "_handed"},
        {&s_head, "_head"},
        {&s_tracer_config, "_tracer_config"},
        {&s_greenlet, "greenlet"},
        {&s_on_start_py, "_on_start_py"},
        {&s_is_enabled, "is_enabled"},
        {&s_set_checked_py, "_set_checked_py"},
        {&s_update_name_py, "_update_name_py"},
    };
    if (intern_names(names, sizeof(names) / sizeof(names[0])) < 0)
        return -1;
    if (kw_parent_context == NULL && (kw_parent_context = Py_BuildValue("(s)", "parent_context")) == NULL)
        return -1;
    if (Zero == NULL && (Zero = PyLong_FromLong(0)) == NULL)
        return -1;
    if (Empty == NULL && (Empty = PyTuple_New(0)) == NULL)
        return -1;
    return 0;
}
