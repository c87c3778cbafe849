/* Django's ServerSpanMiddleware, its per-request steps in C: the base class DjangoMiddleware (Django
 * calls the instance and its process_view without a Python frame) and RequestState, what a request
 * carries from its start to its end (request._otel_uwsgi_span).
 *
 * The C steps are ServerSpanMiddleware._call and ._process_view (the Python twins, in
 * otel_uwsgi/instrumentation/fast/middleware.py) for the common request: a Host seen before, a known
 * method, no SCRIPT_NAME, nothing excluded, captured or extra, a view with a route.  Anything else
 * goes to the twin before anything has changed; the end is close_server_span (_server.c) or the
 * twin's _end.  tests/unit/instrumentation/fast/test_spans_equal_stock.py runs the Django site
 * through both (OTEL_UWSGI_NO_EXTENSIONS) against the stock instrumentation. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "_accel.h"

typedef struct {
    PyObject_HEAD
    PyObject *get_response;
    PyObject *hosts; /* _Hosts: the Host values accepted so far */
} Middleware;

typedef struct {
    PyObject_HEAD
    PyObject *span, *token, *server, *named, *method, *exception, *route;
    PyObject *meta; /* request.META, for the C end (not visible to Python) */
} RequestState;

/* configure_django()'s: the extension module, the middleware module's globals (where _setup is), a
 * function deriving (fast, capture_all_methods, lazy tracer, extractor) from a Setup, KNOWN_METHODS,
 * opentelemetry.instrumentation.propagators' globals, server_span.warn_once and the META key. */
static PyObject *Accel, *MwGlobals, *Derive, *Known, *PropagatorGlobals, *WarnOnce, *MetaKey;
/* what Derive gave for CachedSetup */
static PyObject *CachedSetup, *LazyTracer, *Extractor;
static int FastOk, CaptureAll;
static PyObject *s_setup, *s_call, *s_process_view_py, *s_end, *s_meta, *s_method, *s_path, *s_path_info,
    *s_settings, *s_allowed, *s_seen, *s_state, *k_host, *k_forwarded, *k_allowed_hosts, *s_status_code,
    *s_resolver_match, *s_route, *s_url_name, *s_urlconf, *s_update_name, *s_response_propagator;
/* what warn_once() is told failed */
static PyObject *w_starting, *w_naming;

/* ------------------------------------------------------------------ RequestState */

static int state_traverse(RequestState *self, visitproc visit, void *arg) {
    Py_VISIT(self->span);
    Py_VISIT(self->token);
    Py_VISIT(self->server);
    Py_VISIT(self->named);
    Py_VISIT(self->method);
    Py_VISIT(self->exception);
    Py_VISIT(self->route);
    Py_VISIT(self->meta);
    return 0;
}

static int state_clear(RequestState *self) {
    Py_CLEAR(self->span);
    Py_CLEAR(self->token);
    Py_CLEAR(self->server);
    Py_CLEAR(self->named);
    Py_CLEAR(self->method);
    Py_CLEAR(self->exception);
    Py_CLEAR(self->route);
    Py_CLEAR(self->meta);
    return 0;
}

static void state_dealloc(RequestState *self) {
    PyObject_GC_UnTrack(self);
    state_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef state_members[] = {
    {"span", T_OBJECT, offsetof(RequestState, span), 0, NULL},
    {"token", T_OBJECT, offsetof(RequestState, token), 0, NULL},
    {"server", T_OBJECT, offsetof(RequestState, server), 0, NULL},
    {"named", T_OBJECT, offsetof(RequestState, named), 0, NULL},
    {"method", T_OBJECT, offsetof(RequestState, method), 0, NULL},
    {"exception", T_OBJECT, offsetof(RequestState, exception), 0, NULL},
    {"route", T_OBJECT, offsetof(RequestState, route), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject RequestStateType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "otel_uwsgi.native._accel.RequestState",
    .tp_basicsize = sizeof(RequestState),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "What a traced Django request carries from its start to its end (request._otel_uwsgi_span).",
    .tp_traverse = (traverseproc)state_traverse,
    .tp_clear = (inquiry)state_clear,
    .tp_dealloc = (destructor)state_dealloc,
    .tp_members = state_members,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------------ configuration */

PyObject *configure_django(PyObject *module, PyObject *args) {
    PyObject *v[6];
    if (!PyArg_ParseTuple(args, "OOOOOO:configure_django", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]))
        return NULL;
    if (!PyDict_CheckExact(v[0]) || !PyCallable_Check(v[1]) || !PyAnySet_Check(v[2]) || !PyDict_CheckExact(v[3]) ||
        !PyCallable_Check(v[4]) || !PyUnicode_CheckExact(v[5])) {
        PyErr_SetString(PyExc_TypeError, "configure_django(globals, derive, KNOWN_METHODS, propagators' globals, "
                                         "warn_once, meta_key)");
        return NULL;
    }
    PyObject **slots[] = {&MwGlobals, &Derive, &Known, &PropagatorGlobals, &WarnOnce, &MetaKey};
    for (int i = 0; i < 6; i++) {
        Py_INCREF(v[i]);
        Py_XSETREF(*slots[i], v[i]);
    }
    Py_INCREF(module);
    Py_XSETREF(Accel, module);
    Py_CLEAR(CachedSetup);
    Py_RETURN_NONE;
}

/* 1 when the current Setup (the middleware module's _setup) lets the C steps run, 0 when not, -1 on error. */
static int fast_setup(void) {
    if (MwGlobals == NULL)
        return 0;
    PyObject *setup = PyDict_GetItemWithError(MwGlobals, s_setup); /* borrowed */
    if (setup == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (setup == Py_None)
        return 0;
    if (setup != CachedSetup) {
        PyObject *derived = PyObject_CallOneArg(Derive, setup);
        if (derived == NULL)
            return -1;
        if (!PyTuple_CheckExact(derived) || PyTuple_GET_SIZE(derived) != 4) {
            Py_DECREF(derived);
            PyErr_SetString(PyExc_TypeError, "derive(setup) -> (fast, capture_all, tracer, extractor)");
            return -1;
        }
        int fast = PyObject_IsTrue(PyTuple_GET_ITEM(derived, 0));
        int capture_all = PyObject_IsTrue(PyTuple_GET_ITEM(derived, 1));
        if (fast < 0 || capture_all < 0) {
            Py_DECREF(derived);
            return -1;
        }
        FastOk = fast;
        CaptureAll = capture_all;
        Py_INCREF(PyTuple_GET_ITEM(derived, 2));
        Py_XSETREF(LazyTracer, PyTuple_GET_ITEM(derived, 2));
        Py_INCREF(PyTuple_GET_ITEM(derived, 3));
        Py_XSETREF(Extractor, PyTuple_GET_ITEM(derived, 3));
        Py_INCREF(setup);
        Py_XSETREF(CachedSetup, setup);
        Py_DECREF(derived);
    }
    return FastOk;
}

/* The failed step logged as the Python code's `except Exception: warn_once(what)` does (the exception
 * is the one being handled); a BaseException that is not an Exception stays raised: 0 then, else -1. */
static int warn_failed(PyObject *what) {
    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return -1;
    call_handling(WarnOnce, what);
    return 0;
}

/* ------------------------------------------------------------------ DjangoMiddleware */

/* The Host check of the Python __call__ for a Host accepted before (its `_Hosts.settings` cache says
 * USE_X_FORWARDED_HOST is False): 1 when accepted, 0 when the Python code must look, -1 on error. */
static int host_seen(PyObject *hosts, PyObject *meta) {
    PyObject *key = PyDict_GetItemWithError(meta, k_host); /* borrowed */
    if (key == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *cached = PyObject_GetAttr(hosts, s_settings);
    if (cached == NULL)
        return -1;
    int seen = 0;
    if (PyDict_CheckExact(cached)) {
        PyObject *forwarded = PyDict_GetItemWithError(cached, k_forwarded);
        PyObject *allowed = forwarded == Py_False ? PyDict_GetItemWithError(cached, k_allowed_hosts) : NULL;
        if (allowed != NULL) {
            PyObject *known = PyObject_GetAttr(hosts, s_allowed);
            PyObject *keys = known == allowed ? PyObject_GetAttr(hosts, s_seen) : NULL;
            if (known == NULL || (known == allowed && keys == NULL))
                seen = -1;
            else if (keys != NULL && PySet_CheckExact(keys))
                seen = PySet_Contains(keys, key);
            Py_XDECREF(known);
            Py_XDECREF(keys);
        }
        if (seen == 0 && PyErr_Occurred())
            seen = -1;
    }
    Py_DECREF(cached);
    return seen;
}

/* The request's state with its span open and current: a new reference; Py_None (a new reference)
 * when the Python code must handle the request (nothing has changed); NULL with an exception. */
static PyObject *open_request(PyObject *self, PyObject *request) {
    Middleware *mw = (Middleware *)self;
    PyObject *meta = NULL, *method = NULL, *path = NULL, *path_info = NULL, *attributes = NULL, *opened = NULL,
             *result = NULL;
    RequestState *state = NULL;
    if ((meta = PyObject_GetAttr(request, s_meta)) == NULL)
        goto out;
    if (!PyDict_CheckExact(meta) || mw->hosts == NULL)
        goto python;
    int seen = host_seen(mw->hosts, meta);
    if (seen <= 0) {
        if (seen < 0)
            goto out;
        goto python;
    }
    if ((method = PyObject_GetAttr(request, s_method)) == NULL)
        goto out;
    int known = PyUnicode_CheckExact(method) ? PySet_Contains(Known, method) : 0;
    if (known <= 0) {
        if (known < 0)
            goto out;
        goto python;
    }
    if ((path = PyObject_GetAttr(request, s_path)) == NULL || (path_info = PyObject_GetAttr(request, s_path_info)) == NULL)
        goto out;
    if (path != path_info) { /* mounted under SCRIPT_NAME: the Python code resolves */
        int same = PyObject_RichCompareBool(path, path_info, Py_EQ);
        if (same <= 0) {
            if (same < 0)
                goto out;
            goto python;
        }
    }
    PyObject *attribute_args[2] = {meta, CaptureAll ? Py_True : Py_False};
    if ((attributes = server_attributes(Accel, attribute_args, 2)) == NULL)
        goto out;
    if (attributes == Py_None)
        goto python;
    if ((state = PyObject_GC_New(RequestState, &RequestStateType)) == NULL)
        goto out;
    state->span = state->token = state->server = state->named = state->method = state->exception = NULL;
    state->route = state->meta = NULL;
    PyObject_GC_Track(state);
    /* named later from Django's own resolution (process_view), as the stock middleware's span */
    /* held across the call: another thread may replace them (a new Setup) while Python code runs */
    PyObject *tracer = Py_NewRef(LazyTracer), *extractor = Py_NewRef(Extractor);
    PyObject *open_args[5] = {tracer, extractor, meta, method, attributes};
    opened = open_server_span(Accel, open_args, 5);
    Py_DECREF(tracer);
    Py_DECREF(extractor);
    if (opened == NULL)
        goto out;
    if (opened == Py_None)
        goto python;
    /* from here on the span is current */
    state->span = Py_NewRef(PyTuple_GET_ITEM(opened, 0));
    state->token = Py_NewRef(PyTuple_GET_ITEM(opened, 1));
    state->server = Py_NewRef(PyTuple_GET_ITEM(opened, 2));
    state->named = Py_NewRef(Py_False);
    state->method = Py_NewRef(method);
    state->meta = Py_NewRef(meta);
    if (PyObject_SetAttr(request, s_state, (PyObject *)state) < 0 || PyDict_SetItem(meta, MetaKey, state->span) < 0) {
        /* the span closed and detached by the Python end, then the failure reported */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyObject *ended = PyObject_CallMethodObjArgs(self, s_end, request, state, Py_None, Py_None, NULL);
        Py_XDECREF(ended);
        PyErr_Clear();
        PyErr_Restore(type, value, tb);
        goto out;
    }
    result = (PyObject *)state;
    state = NULL;
    goto out;
python:
    result = Py_NewRef(Py_None);
out:
    Py_XDECREF(meta);
    Py_XDECREF(method);
    Py_XDECREF(path);
    Py_XDECREF(path_info);
    Py_XDECREF(attributes);
    Py_XDECREF(opened);
    Py_XDECREF(state);
    return result;
}

/* The end of a request whose response came: close_server_span's common end, else the Python _end. */
static PyObject *close_request(PyObject *self, PyObject *request, RequestState *state, PyObject *response) {
    if (state->named == Py_True && (state->exception == NULL || state->exception == Py_None)) {
        PyObject *propagator = PyDict_GetItemWithError(PropagatorGlobals, s_response_propagator); /* borrowed */
        if (propagator == NULL && PyErr_Occurred())
            return NULL;
        if (propagator == Py_None) {
            PyObject *code = PyObject_GetAttr(response, s_status_code);
            if (code == NULL)
                return NULL;
            PyObject *close_args[6] = {state->span, state->token, state->meta, MetaKey,
                                       state->route ? state->route : Py_None, code};
            PyObject *closed = close_server_span(Accel, close_args, 6);
            Py_DECREF(code);
            if (closed == NULL)
                return NULL;
            Py_DECREF(closed);
            if (closed == Py_True)
                return Py_NewRef(response);
        }
    }
    PyObject *exception = state->exception ? state->exception : Py_None;
    PyObject *ended = PyObject_CallMethodObjArgs(self, s_end, request, (PyObject *)state, response, exception, NULL);
    if (ended == NULL)
        return NULL;
    Py_DECREF(ended);
    return Py_NewRef(response);
}

static PyObject *middleware_call(PyObject *self, PyObject *args, PyObject *kwargs) {
    Middleware *mw = (Middleware *)self;
    int fast = (kwargs == NULL || PyDict_GET_SIZE(kwargs) == 0) && PyTuple_GET_SIZE(args) == 1 && mw->get_response;
    if (fast && (fast = fast_setup()) < 0) {
        if (warn_failed(w_starting) < 0)
            return NULL;
        fast = 0;
    }
    if (!fast) {
        PyObject *twin = PyObject_GetAttr(self, s_call);
        if (twin == NULL)
            return NULL;
        PyObject *result = PyObject_Call(twin, args, kwargs);
        Py_DECREF(twin);
        return result;
    }
    PyObject *request = PyTuple_GET_ITEM(args, 0);
    PyObject *state = open_request(self, request);
    if (state == NULL) { /* the Python code's `except Exception: warn_once(...)`: served untraced */
        if (warn_failed(w_starting) < 0)
            return NULL;
        return PyObject_CallOneArg(mw->get_response, request);
    }
    if (state == Py_None) {
        Py_DECREF(state);
        return PyObject_CallMethodOneArg(self, s_call, request);
    }
    PyObject *response = PyObject_CallOneArg(mw->get_response, request);
    if (response == NULL) { /* what Django did not turn into a response: the span ends with it, it propagates */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL && value != NULL)
            PyException_SetTraceback(value, tb);
        PyObject *exception = PyErr_GivenExceptionMatches(type, PyExc_Exception) ? value : Py_None;
        PyObject *ended = PyObject_CallMethodObjArgs(self, s_end, request, state, Py_None, exception, NULL);
        Py_DECREF(state);
        if (ended == NULL) { /* raised by the end itself: that exception goes up, as in Python */
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            return NULL;
        }
        Py_DECREF(ended);
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    PyObject *result = close_request(self, request, (RequestState *)state, response);
    Py_DECREF(state);
    Py_DECREF(response);
    return result;
}

/* getattr(obj, name, None): a new reference, NULL with an exception other than AttributeError. */
static PyObject *optional_attr(PyObject *obj, PyObject *name) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        value = Py_NewRef(Py_None);
    }
    return value;
}

/* process_view(request, view_func, view_args, view_kwargs): the span named from Django's resolution,
 * as ServerSpanMiddleware._process_view does, for a resolved view and no per-request URLconf. */
static PyObject *middleware_process_view(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *state = NULL, *match = NULL, *route = NULL, *name = NULL;
    int named = 0;
    if (nargs != 4)
        goto python;
    PyObject *request = args[0];
    if ((state = PyObject_GetAttr(request, s_state)) == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            goto python;
        PyErr_Clear(); /* an untraced request */
        Py_RETURN_NONE;
    }
    if (Py_TYPE(state) != &RequestStateType || ((RequestState *)state)->span == NULL)
        goto python;
    RequestState *st = (RequestState *)state;
    if ((match = PyObject_GetAttr(request, s_resolver_match)) == NULL)
        goto python;
    int truth = PyObject_IsTrue(match);
    if (truth <= 0)
        goto python;
    if ((route = optional_attr(match, s_route)) == NULL || (route != Py_None && !PyUnicode_CheckExact(route)))
        goto python;
    if (st->named != Py_True) { /* Python's naming: "METHOD route", else "METHOD url_name", else the method */
        int urlconf = PyObject_HasAttr(request, s_urlconf);
        if (urlconf || st->method == NULL || !PyUnicode_CheckExact(st->method))
            goto python;
        if (route != Py_None && PyUnicode_GET_LENGTH(route)) {
            if ((name = PyUnicode_FromFormat("%U %U", st->method, route)) == NULL)
                goto python;
        } else {
            PyObject *url_name = optional_attr(match, s_url_name);
            if (url_name == NULL || (url_name != Py_None && !PyUnicode_CheckExact(url_name))) {
                Py_XDECREF(url_name);
                goto python;
            }
            if (url_name != Py_None && PyUnicode_GET_LENGTH(url_name))
                name = PyUnicode_FromFormat("%U %U", st->method, url_name);
            Py_DECREF(url_name);
            if (name == NULL && PyErr_Occurred())
                goto python;
        }
        named = 1;
    }
    /* from here on, as the Python code: a failure is warned about, never raised */
    Py_XSETREF(st->route, Py_NewRef(route));
    if (named)
        Py_XSETREF(st->named, Py_NewRef(Py_True));
    if (name != NULL) { /* "METHOD x" differs from request.method, which has no space */
        /* a lean span's update_name is lean_update_name (_lifecycle.c), bound as its method */
        PyObject *renamed = PyObject_CallMethodOneArg(st->span, s_update_name, name);
        if (renamed == NULL && warn_failed(w_naming) < 0)
            goto fail;
        Py_XDECREF(renamed);
    }
    Py_DECREF(state);
    Py_DECREF(match);
    Py_DECREF(route);
    Py_XDECREF(name);
    Py_RETURN_NONE;
python:
    PyErr_Clear();
    Py_XDECREF(state);
    Py_XDECREF(match);
    Py_XDECREF(route);
    Py_XDECREF(name);
    {
        PyObject *call[5] = {self, NULL, NULL, NULL, NULL};
        for (Py_ssize_t i = 0; i < nargs && i < 4; i++)
            call[i + 1] = args[i];
        return PyObject_VectorcallMethod(s_process_view_py, call, (nargs < 4 ? nargs : 4) + 1, NULL);
    }
fail:
    Py_DECREF(state);
    Py_DECREF(match);
    Py_DECREF(route);
    Py_XDECREF(name);
    return NULL;
}

static int middleware_traverse(Middleware *self, visitproc visit, void *arg) {
    Py_VISIT(self->get_response);
    Py_VISIT(self->hosts);
    return 0;
}

static int middleware_clear(Middleware *self) {
    Py_CLEAR(self->get_response);
    Py_CLEAR(self->hosts);
    return 0;
}

static void middleware_dealloc(Middleware *self) {
    PyObject_GC_UnTrack(self);
    middleware_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef middleware_members[] = {
    {"get_response", T_OBJECT, offsetof(Middleware, get_response), 0, NULL},
    {"_hosts", T_OBJECT, offsetof(Middleware, hosts), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef middleware_methods[] = {
    {"process_view", (PyCFunction)(void (*)(void))middleware_process_view, METH_FASTCALL,
     "process_view(request, view_func, view_args, view_kwargs): the span named from Django's resolution."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MiddlewareType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "otel_uwsgi.native._accel.DjangoMiddleware",
    .tp_basicsize = sizeof(Middleware),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The base of ServerSpanMiddleware: its __call__ and process_view for the common request (_django.c).",
    .tp_traverse = (traverseproc)middleware_traverse,
    .tp_clear = (inquiry)middleware_clear,
    .tp_dealloc = (destructor)middleware_dealloc,
    .tp_call = middleware_call,
    .tp_members = middleware_members,
    .tp_methods = middleware_methods,
    .tp_new = PyType_GenericNew,
};

int django_add(PyObject *module) {
    InternedName names[] = {{&s_setup, "_setup"},
                 {&s_call, "_call"},
                 {&s_process_view_py, "_process_view"},
                 {&s_end, "_end"},
                 {&s_meta, "META"},
                 {&s_method, "method"},
                 {&s_path, "path"},
                 {&s_path_info, "path_info"},
                 {&s_settings, "settings"},
                 {&s_allowed, "allowed"},
                 {&s_seen, "seen"},
                 {&s_state, "_otel_uwsgi_span"},
                 {&k_host, "HTTP_HOST"},
                 {&k_forwarded, "USE_X_FORWARDED_HOST"},
                 {&k_allowed_hosts, "ALLOWED_HOSTS"},
                 {&s_status_code, "status_code"},
                 {&s_resolver_match, "resolver_match"},
                 {&s_route, "route"},
                 {&s_url_name, "url_name"},
                 {&s_urlconf, "urlconf"},
                 {&s_update_name, "update_name"},
                 {&s_response_propagator, "_RESPONSE_PROPAGATOR"},
                 {&w_starting, "starting a request span"},
                 {&w_naming, "naming a request span"}};
    if (intern_names(names, sizeof(names) / sizeof(names[0])) < 0)
        return -1;
    if (PyType_Ready(&RequestStateType) < 0 || PyType_Ready(&MiddlewareType) < 0)
        return -1;
    Py_INCREF(&RequestStateType);
    if (PyModule_AddObject(module, "RequestState", (PyObject *)&RequestStateType) < 0) {
        Py_DECREF(&RequestStateType);
        return -1;
    }
    Py_INCREF(&MiddlewareType);
    if (PyModule_AddObject(module, "DjangoMiddleware", (PyObject *)&MiddlewareType) < 0) {
        Py_DECREF(&MiddlewareType);
        return -1;
    }
    return 0;
}
