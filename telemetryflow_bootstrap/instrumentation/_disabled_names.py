"""Names in ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS`` that match no instrumentation.

A typo there (``reqests``) disables nothing: the library stays instrumented while the user
believes it is not, and nothing at run time would say so. The hook (``_bootstrap``) and
``--info``/``doctor`` (``diagnostics.info``) build one warning line from here, so they say
the same thing.

Known names
    Ours (the catalogs, plus ``logging`` and ``runtime_metrics``, which bootstrap installs
    for the whole process) and the entry point names of the installed contrib instrumentors.
    Matched as ``registry.arm`` and ``contrib`` match them: exactly, after the variable's
    parser stripped and lowercased each name and dropped the empty ones. There are no
    aliases (``http.client`` does not disable ``http_client``, ``urllib`` disables only a
    contrib instrumentor of that name), so such spellings are reported too.
Which variable
    Only names that come from ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS`` (which the
    launcher's ``--disable`` writes). ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` is usually
    shared with ``opentelemetry-instrument`` and names contrib instrumentors that are simply
    not installed in this environment, so a value read from it is never reported. When
    ``--disable`` is given while only the OpenTelemetry variable is set, the launcher writes
    the merged list into both (they must not disagree), and the merged list, now ours, is
    checked whole.
Where
    In the hook, not in the launcher: our names live in the catalogs, whose import (the
    registry, ``threading``) would cost the launcher's fast path a few milliseconds on every
    start, and the contrib instrumentors that count are those of the program's interpreter,
    which need not be the launcher's. Nothing is imported unless the variable is set, and
    the entry points are looked at (``contrib.installed()``, the scan ``arm_contrib`` makes
    anyway, once per process) only when a name is unknown to us.
Strict mode
    This is a warning, like the reader's other warnings: ``TELEMETRYFLOW_STRICT`` makes only
    configuration problems (malformed values) fatal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..domain.environment import EnvironmentReading, show_value

VARIABLE = "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS"
_FIELD = "disabled_instrumentations"
_MAX_NAMED = 5  # a pasted list of hundreds of names must still give one readable line


def unknown_names_warning(
    reading: EnvironmentReading,
    ours: Iterable[str],
    contrib_names: Callable[[], Iterable[str]],
) -> str | None:
    """The warning for the disabled names that match nothing, or ``None``.

    ``contrib_names`` is called only when a name is not one of ``ours``, so the usual
    start-up never looks at the installed packages.
    """
    if reading.sources.get(_FIELD) != VARIABLE:
        return None
    known = set(ours)
    unknown = [name for name in dict.fromkeys(reading.values.get(_FIELD, ())) if name not in known]
    if not unknown:
        return None
    known.update(contrib_names())
    unknown = [name for name in unknown if name not in known]
    if not unknown:
        return None
    return _message(unknown, sorted(known))


def our_names(catalog: Iterable[Any]) -> set[str]:
    """Every name of ours that disables something: the catalog entries' and the
    process-level ones (not in the catalogs: bootstrap installs them, see ``contrib``)."""
    from . import contrib

    return {entry.name for entry in catalog} | contrib._PROCESS_LEVEL


def check(reading: EnvironmentReading) -> str | None:
    """``unknown_names_warning`` against the shipped catalogs and the installed contrib
    instrumentors; never raises (a broken catalog or package metadata must not cost the
    program its instrumentation: the check is just skipped)."""
    if reading.sources.get(_FIELD) != VARIABLE:
        return None  # the common case: nothing to import
    try:
        from . import contrib, registry

        return unknown_names_warning(
            reading,
            our_names(registry._catalog()),
            lambda: [entry_point.name for entry_point in contrib.installed()],
        )
    except Exception:
        return None


def _message(unknown: list[str], known: list[str]) -> str:
    # Imported here: the hook imports this module on every start, and this runs only for a
    # name that matches nothing.
    from difflib import get_close_matches

    shown = ", ".join(
        show_value(name) + _suggestion(get_close_matches(name, known, n=1))
        for name in unknown[:_MAX_NAMED]
    )
    if len(unknown) > _MAX_NAMED:
        shown += f" and {len(unknown) - _MAX_NAMED} more"
    plural = len(unknown) > 1
    return (
        f"{VARIABLE} names unknown instrumentation{'s' if plural else ''} {shown}; "
        f"{'they disable' if plural else 'it disables'} nothing "
        f"(expected one of: {', '.join(known)})"
    )


def _suggestion(close: list[str]) -> str:
    return f" (did you mean {close[0]!r}?)" if close else ""
