/* A server request's span started and made current in one C call: the common case of
 * otel_uwsgi.instrumentation.fast.server_span.start_server_span followed by
 * context_ops.attach(context_ops.with_span(span, ctx)), without their Python frames.
 *
 * open_server_span() returns None, and the Python twins run, whenever the step is not the common one:
 * a current context that is not a dict, a current span of a type it was not told about, a request
 * carrying a header the global propagator reads (extraction is Python's), a global propagator the
 * extractor has not seen yet, no real tracer yet.  tests/unit/instrumentation/fast/test_native_server_span.py
 * compares both. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_accel.h"

/* configure_server()'s: the API's current-context ContextVar, its current-span key, its Context
 * class, INVALID_SPAN, the opentelemetry.propagate module, the lean tracer's KNOWN_SPANS (span type
 * -> True), SpanKind.SERVER and SpanKind.INTERNAL. */
static PyObject *Var, *SpanKey, *ContextType, *InvalidSpan, *Propagate, *KnownSpans, *ServerKind, *InternalKind;
/* configure_server()'s too: the lean span classes (a set), context_ops.detach_failed, and the keys
 * of the final attributes. */
static PyObject *LeanClasses, *DetachFailed;
static PyObject *s_tracer, *s_propagator, *s_keys, *s_text_format, *s_start_span, *a_route, *a_status_code;

PyObject *configure_server(PyObject *module, PyObject *args) {
    PyObject *v[10];
    if (!PyArg_ParseTuple(args, "OOOOOOOOOO:configure_server", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                          &v[7], &v[8], &v[9]))
        return NULL;
    if (!PyContextVar_CheckExact(v[0]) || !PyUnicode_CheckExact(v[1]) || !PyType_Check(v[2]) ||
        !PyDict_CheckExact(v[5]) || !PySet_Check(v[8]) || !PyCallable_Check(v[9])) {
        PyErr_SetString(PyExc_TypeError,
                        "configure_server(ContextVar, str, type, span, module, dict, kind, kind, set, callable)");
        return NULL;
    }
    InternedName names[] = {{&s_tracer, "tracer"},         {&s_propagator, "propagator"},
                            {&s_keys, "keys"},             {&s_text_format, "_HTTP_TEXT_FORMAT"},
                            {&s_start_span, "start_span"}, {&a_route, "http.route"},
                            {&a_status_code, "http.status_code"}};
    if (intern_names(names, sizeof(names) / sizeof(names[0])) < 0)
        return NULL;
    PyObject **slots[] = {&Var,        &SpanKey,      &ContextType, &InvalidSpan, &Propagate,
                          &KnownSpans, &ServerKind,   &InternalKind, &LeanClasses, &DetachFailed};
    for (int i = 0; i < 10; i++) {
        Py_INCREF(v[i]);
        Py_XSETREF(*slots[i], v[i]);
    }
    Py_RETURN_NONE;
}

/* Whether none of the extractor's environ keys is in environ, and the global propagator is the one
 * it has read them from: 1, 0 (Python extracts, or refreshes the extractor), -1 on error. */
static int nothing_to_extract(PyObject *extractor, PyObject *environ) {
    PyObject *propagator = PyObject_GetAttr(Propagate, s_text_format);
    PyObject *seen = propagator ? PyObject_GetAttr(extractor, s_propagator) : NULL;
    PyObject *keys = seen ? PyObject_GetAttr(extractor, s_keys) : NULL;
    int nothing = keys != NULL && propagator == seen && PyTuple_CheckExact(keys);
    for (Py_ssize_t i = 0; nothing == 1 && i < PyTuple_GET_SIZE(keys); i++) {
        int has = PyDict_Contains(environ, PyTuple_GET_ITEM(keys, i));
        nothing = has < 0 ? -1 : !has;
    }
    if (keys == NULL)
        nothing = -1;
    Py_XDECREF(propagator);
    Py_XDECREF(seen);
    Py_XDECREF(keys);
    return nothing;
}

/* open_server_span(lazy_tracer, extractor, environ, name, attributes[, key, value, start_time]) -> (span, token,
 * is SERVER), or None.  Flask's form: the context made current also holds value under key (its sqlcommenter tags:
 * context.set_value(key, value, with_span(span, ctx)) in the same copy), and the span starts at start_time. */
PyObject *open_server_span(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 && nargs != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "open_server_span(lazy_tracer, extractor, environ, name, attributes[, key, value, start_time])");
        return NULL;
    }
    if (Var == NULL || !PyDict_CheckExact(args[2]))
        Py_RETURN_NONE;
    PyObject *ctx = NULL, *tracer = NULL, *span = NULL, *made = NULL, *token = NULL, *result = NULL;
    if (PyContextVar_Get(Var, NULL, &ctx) < 0)
        return NULL;
    if (ctx == NULL || !PyDict_Check(ctx))
        goto none;
    /* SERVER when no span is current (start_server_span's test), INTERNAL under a span of a known type */
    PyObject *current = PyDict_GetItemWithError(ctx, SpanKey); /* borrowed */
    int server = 1;
    if (current == NULL) {
        if (PyErr_Occurred())
            goto out;
    } else if (current != Py_None && current != InvalidSpan) {
        PyObject *known = PyDict_GetItemWithError(KnownSpans, (PyObject *)Py_TYPE(current));
        if (known != Py_True) {
            if (PyErr_Occurred())
                goto out;
            goto none; /* isinstance(current, Span) decides, in Python */
        }
        server = 0;
    }
    if (server) {
        int nothing = nothing_to_extract(args[1], args[2]);
        if (nothing < 0)
            goto out;
        if (!nothing)
            goto none;
    }
    if ((tracer = PyObject_GetAttr(args[0], s_tracer)) == NULL)
        goto out;
    if (tracer == Py_None)
        goto none;
    PyObject *call[6] = {tracer, args[3], ctx, server ? ServerKind : InternalKind, args[4], nargs == 8 ? args[7] : NULL};
    if ((span = PyObject_VectorcallMethod(s_start_span, call, nargs == 8 ? 6 : 5, NULL)) == NULL)
        goto out;
    /* with_span(): a copy of ctx with the span current (Context refuses item assignment: dict's own) */
    if ((made = PyObject_CallOneArg(ContextType, ctx)) == NULL || !PyDict_Check(made) ||
        PyDict_SetItem(made, SpanKey, span) < 0 || (nargs == 8 && PyDict_SetItem(made, args[5], args[6]) < 0))
        goto out;
    if ((token = PyContextVar_Set(Var, made)) == NULL)
        goto out;
    result = PyTuple_Pack(3, span, token, server ? Py_True : Py_False);
    goto out;
none:
    result = Py_None;
    Py_INCREF(result);
out:
    if (result == NULL && made != NULL && !PyDict_Check(made) && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "Context() is not a dict");
    Py_XDECREF(ctx);
    Py_XDECREF(tracer);
    Py_XDECREF(span);
    Py_XDECREF(made);
    Py_XDECREF(token);
    return result;
}

void call_handling(PyObject *callable, PyObject *arg) {
    PyObject *type, *value, *tb, *old_type, *old_value, *old_tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyErr_GetExcInfo(&old_type, &old_value, &old_tb);
    PyErr_SetExcInfo(type, value, tb); /* the handled exception logger.exception() reports */
    PyObject *done = arg == NULL ? PyObject_CallNoArgs(callable) : PyObject_CallOneArg(callable, arg);
    if (done == NULL)
        PyErr_Clear();
    Py_XDECREF(done);
    PyErr_SetExcInfo(old_type, old_value, old_tb);
}

/* context_ops.detach's failure, as the API reports it: logged with the exception, never raised. */
static void detach_failed(void) { call_handling(DetachFailed, NULL); }

/* close_server_span(span, token, meta, meta_key, route, status_code) -> True, or None with nothing done.
 *
 * The common end of a Django request on the fast path (ServerSpanMiddleware._end): ``http.route``
 * (when there is one) and ``http.status_code`` set in one call, the span's META entry (meta_key) popped, the
 * context detached, the span ended.  Only for a lean span not ended, whose lock nobody holds, and a
 * status code of 100-499 (which sets no status): anything else is None, and the Python code does
 * all of it. */
PyObject *close_server_span(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "close_server_span(span, token, meta, meta_key, route, status_code)");
        return NULL;
    }
    PyObject *span = args[0], *token = args[1], *meta = args[2], *meta_key = args[3], *route = args[4],
             *code = args[5];
    if (Var == NULL || !PyLong_CheckExact(code) || !PyDict_CheckExact(meta) ||
        !(route == Py_None || PyUnicode_CheckExact(route)))
        Py_RETURN_NONE;
    long status = PyLong_AsLong(code);
    if (status == -1 && PyErr_Occurred())
        return NULL;
    int lean = PySet_Contains(LeanClasses, (PyObject *)Py_TYPE(span));
    if (lean < 0)
        return NULL;
    if (status < 100 || status >= 500 || !lean)
        Py_RETURN_NONE;
    int changeable = span_changeable(span);
    if (changeable < 0)
        return NULL;
    if (!changeable)
        Py_RETURN_NONE;
    /* from here on, as the Python code would: it does not step back */
    PyObject *final = PyDict_New();
    if (final == NULL)
        return NULL;
    if ((route != Py_None && PyUnicode_GET_LENGTH(route) && PyDict_SetItem(final, a_route, route) < 0) ||
        PyDict_SetItem(final, a_status_code, code) < 0) {
        Py_DECREF(final);
        return NULL;
    }
    PyObject *call[2] = {span, final};
    PyObject *done = lean_set_checked(module, call, 2, NULL);
    Py_DECREF(final);
    if (done == NULL)
        return NULL;
    Py_DECREF(done);
    if (PyDict_DelItem(meta, meta_key) < 0) { /* request.META.pop(meta_key, None) */
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            return NULL;
        PyErr_Clear();
    }
    if (PyContextVar_Reset(Var, token) < 0)
        detach_failed();
    PyObject *end = lean_end(module, call, 1, NULL);
    if (end == NULL)
        return NULL;
    Py_DECREF(end);
    Py_RETURN_TRUE;
}
