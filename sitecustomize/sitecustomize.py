"""telemetryflow-run's hook: Python imports this at start-up because the launcher put this
folder first on PYTHONPATH.

It starts instrumentation and then imports the ``sitecustomize`` it shadows (a user's or the
distribution's), so that one still runs. Whatever goes wrong, the program runs: one line on
stderr, never a traceback, never a changed exit code (unless TELEMETRYFLOW_STRICT=true asks
for exit 2 on configuration problems). Kept tiny: the work is in the package.
"""


_SAID = "_TELEMETRYFLOW_SAID"  # the last line below, so child processes don't repeat it


def _telemetryflow_say_once(line):
    """One line per process tree: a program's child processes (a Pool's workers, the
    resource tracker, a subprocess) inherit the environment, and would each print it."""
    import os
    import sys

    if os.environ.get(_SAID) == line:
        return
    sys.stderr.write(line + "\n")
    os.environ[_SAID] = line


def _telemetryflow_start():
    """Start-up with the cyclic GC paused: it makes ~20k objects that live as long as the
    process, and the ~50 collections (a few full ones) their allocation would trigger on
    the way walk them for ~560 objects of garbage, which the program's first collection
    takes instead: ~8M instructions of ~510M on ``python -c pass``. Not ``gc.freeze()``:
    see tests/e2e/test_exit_finalizers.py."""
    import gc

    collecting = gc.isenabled()
    gc.disable()
    try:
        _telemetryflow_try_start()
    finally:
        if collecting:
            gc.enable()


def _telemetryflow_try_start():
    import sys

    try:
        from telemetryflow_bootstrap._bootstrap import StrictModeError, start
    except Exception as exc:
        _telemetryflow_say_once(
            "telemetryflow: instrumentation disabled: cannot import telemetryflow_bootstrap "
            f"in {sys.executable} ({type(exc).__name__}: {exc}); install it in that "
            "environment"
        )
        return
    try:
        start()
    except StrictModeError as exc:
        sys.stderr.write(f"telemetryflow: error: {exc} (TELEMETRYFLOW_STRICT=true)\n")
        sys.stderr.flush()
        import os

        os._exit(2)
    except Exception as exc:
        _telemetryflow_say_once(
            f"telemetryflow: instrumentation disabled: {type(exc).__name__}: {exc}")


def _telemetryflow_chain():
    """Run the next ``sitecustomize`` on sys.path, as Python would have without us."""
    import importlib.machinery
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    try:
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.stderr.write(
            f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n"
            f"{type(exc).__name__}: {exc}\n"
        )


_telemetryflow_start()
_telemetryflow_chain()
