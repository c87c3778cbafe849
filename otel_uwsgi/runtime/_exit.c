/* A C exit handler that calls one Python callable, only in the process that registered it.
 *
 * The uWSGI master runs no Python at its exit (no atexit, no uwsgi.atexit), yet it is the one
 * process left at a final shutdown, after every worker is gone: the place to ship the span
 * journals that workers killed while busy could not.  It leaves through exit() from its main
 * loop (master_checks.c, uwsgi_master_check_death), not from a signal handler, so calling Python
 * there is an ordinary call on an idle interpreter.
 *
 * C exit handlers are inherited by every process the master forks, and a worker's exit() often
 * runs inside uWSGI's signal handler (end_me): there the handler must not touch Python at all.
 * So the pid is compared before anything else, in C; a process that finalised Python already (a
 * plain interpreter exiting) is left alone too.
 *
 * The callable runs on a thread of its own, the main thread waiting with the GIL released: exit()
 * destroys the main thread's C++ thread_local objects before it runs atexit handlers, and greenlet
 * keeps its per-thread state in one.  In a master that gevent patched (gevent-early-monkey-patch,
 * or the app's own patch_all()), every lock, sleep and socket goes through greenlet, and the same
 * call on the main thread crashed the master (Segmentation Fault at its exit).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static PyObject *callback;
static pid_t owner;
static int registered;

static void *call_back(void *unused) {
    (void)unused;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *result = PyObject_CallObject(callback, NULL);
    if (result == NULL)
        PyErr_Clear();
    else
        Py_DECREF(result);
    PyGILState_Release(gil);
    return NULL;
}

static void at_exit(void) {
    if (callback == NULL || getpid() != owner || !Py_IsInitialized())
        return;
    pthread_t thread;
    PyGILState_STATE gil = PyGILState_Ensure(); /* held or not before: released while the thread runs */
    Py_BEGIN_ALLOW_THREADS
    if (pthread_create(&thread, NULL, call_back, NULL) == 0)
        pthread_join(thread, NULL);
    Py_END_ALLOW_THREADS
    PyGILState_Release(gil);
}

static PyObject *register_exit(PyObject *self, PyObject *arg) {
    if (!PyCallable_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "register_exit() takes a callable");
        return NULL;
    }
    if (!registered) {
        if (atexit(at_exit) != 0) {
            PyErr_SetString(PyExc_OSError, "atexit() refused the handler");
            return NULL;
        }
        registered = 1;
    }
    Py_INCREF(arg);
    Py_XSETREF(callback, arg);
    owner = getpid();
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"register_exit", register_exit, METH_O,
     "register_exit(callable): call it when this process (and no process forked from it) exits."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_exit", NULL, -1, methods};

PyMODINIT_FUNC PyInit__exit(void) { return PyModule_Create(&module); }
