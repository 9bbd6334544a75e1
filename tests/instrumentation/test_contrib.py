"""Contrib instrumentors (``opentelemetry_instrumentor`` entry points) next to ours.

No real contrib package installs cleanly here (opentelemetry-instrumentation-urllib pins
opentelemetry-instrumentation to a different version than the venv's), so the tests write
tiny real distributions — ``*.dist-info`` with METADATA and entry_points.txt, plus the
modules — into a temporary directory on ``sys.path``; ``importlib.metadata`` finds them like
any installed package. Each instrumentor subclasses the real ``BaseInstrumentor``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.instrumentation import contrib, registry
from telemetryflow_bootstrap.instrumentation.registry import PatchContext

from ..e2e.launcher import REPO, receiver_env

_INSTRUMENTOR = '''
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
import {target}


class FakeInstrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self):
        return {dependencies!r}

    def _instrument(self, **kwargs):
        {target}.INSTRUMENTED_BY = "{name}"
        {target}.INSTRUMENT_KWARGS = sorted(kwargs)

    def _uninstrument(self, **kwargs):
        pass
'''


def _dist(root: Path, name: str, *, requires: tuple[str, ...] = (),
          entry_points: dict[str, str] | None = None, top_level: str | None = None,
          record: tuple[str, ...] = ()) -> None:
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    if any("instruments" in r for r in requires):
        lines.append("Provides-Extra: instruments")
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    if entry_points:
        body = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[opentelemetry_instrumentor]\n{body}")
    if top_level is not None:
        (info / "top_level.txt").write_text(top_level + "\n")
    if record:
        (info / "RECORD").write_text("".join(f"{path},,\n" for path in record))


def _contrib_package(root: Path, name: str, target_module: str,
                     target_dist: str | None) -> str:
    """A contrib package whose instrumentor ``name`` instruments ``target_module`` (shipped by
    ``target_dist``, or the stdlib when None); returns the instrumentor's module name."""
    module = f"fake_instrumentor_{name}"
    dependencies = (f"{target_dist} >= 1.0",) if target_dist else ()
    (root / f"{module}.py").write_text(_INSTRUMENTOR.format(
        target=target_module, dependencies=dependencies, name=name))
    requires = (f'{target_dist} >= 1.0 ; extra == "instruments"',) if target_dist else ()
    _dist(root, f"fake-contrib-{name}", requires=requires,
          entry_points={name: f"{module}:FakeInstrumentor"})
    return module


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A packages directory on sys.path, and contrib/registry state as in a new process."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(contrib, "_found", None)
    monkeypatch.setattr(contrib, "_armed", False)
    monkeypatch.setattr(registry, "_status", {})
    return tmp_path


def _context(**config: Any) -> PatchContext:
    return PatchContext(tracer=None, meter=None, logger_provider=None,
                        config=TelemetryConfig(**config), handler=None)


def test_contrib_for_a_library_we_do_not_cover_runs_lazily_on_import(fresh: Path) -> None:
    """A contrib instrumentor for a library we have no patch for is armed, not loaded until
    the library (found through its distribution's modules) is imported, then instrumented."""
    _dist(fresh, "fakelib-dist", top_level="fakelib_mod")
    (fresh / "fakelib_mod.py").write_text("")
    instrumentor = _contrib_package(fresh, "fakelib", "fakelib_mod", "fakelib-dist")
    assert contrib.arm_contrib(_context(), {"requests"}) == ["fakelib"]
    assert instrumentor not in sys.modules
    assert registry.status()["contrib:fakelib"] == ("armed", "fakelib_mod")
    import fakelib_mod  # type: ignore[import-not-found]

    assert fakelib_mod.INSTRUMENTED_BY == "fakelib"
    assert registry.status()["contrib:fakelib"][0] == "applied"


def test_contrib_for_a_library_we_cover_is_skipped(fresh: Path) -> None:
    """Where we have our own patch the contrib instrumentor is neither armed nor loaded."""
    _dist(fresh, "covered-dist", top_level="covered_mod")
    (fresh / "covered_mod.py").write_text("")
    instrumentor = _contrib_package(fresh, "covered", "covered_mod", "covered-dist")
    assert contrib.arm_contrib(_context(), {"covered"}) == []
    import covered_mod  # type: ignore[import-not-found]

    assert not hasattr(covered_mod, "INSTRUMENTED_BY")
    assert instrumentor not in sys.modules
    state, detail = registry.status()["contrib:covered"]
    assert state == "skipped" and "TELEMETRYFLOW_PREFER_CONTRIB=covered" in detail


def test_prefer_contrib_arms_theirs_and_tells_the_registry_to_skip_ours(fresh: Path) -> None:
    """With TELEMETRYFLOW_PREFER_CONTRIB naming a library, ``preferred`` hands ours over and
    the contrib instrumentor is armed instead."""
    _dist(fresh, "pref-dist", top_level="pref_mod")
    (fresh / "pref_mod.py").write_text("")
    _contrib_package(fresh, "pref", "pref_mod", "pref-dist")
    context = _context(prefer_contrib=("pref", "absent"))
    assert contrib.preferred(context.config) == frozenset({"pref"})
    assert contrib.arm_contrib(context, {"pref"}) == ["pref"]
    import pref_mod  # type: ignore[import-not-found]

    assert pref_mod.INSTRUMENTED_BY == "pref"


def test_disabled_names_apply_to_contrib_too(fresh: Path) -> None:
    """A name in TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS disables the contrib instrumentor of
    that entry point name."""
    _dist(fresh, "off-dist", top_level="off_mod")
    _contrib_package(fresh, "off", "off_mod", "off-dist")
    assert contrib.arm_contrib(_context(disabled_instrumentations=("off",)), set()) == []
    assert registry.status()["contrib:off"][0] == "disabled"


def test_disabling_an_installed_contrib_name_is_no_unknown_name(fresh: Path) -> None:
    """The entry point name of an installed contrib instrumentor is a known name for
    TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS; a near miss is reported with it as the hint,
    and names of ours alone never make the check look at the entry points."""
    from telemetryflow_bootstrap.domain.config import load_config
    from telemetryflow_bootstrap.instrumentation import _disabled_names

    _contrib_package(fresh, "fakeoff", "fakeoff_mod", None)

    def check(value: str) -> str | None:
        reading = load_config({"TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS": value})[1]
        return _disabled_names.check(reading)

    assert check("requests,logging") is None
    assert contrib._found is None  # no scan for names of ours
    assert check("FakeOff,requests") is None
    warning = check("fakeof")
    assert warning is not None
    assert "'fakeof' (did you mean 'fakeoff'?)" in warning
    assert "fakeoff" in warning.split("expected one of: ")[1]


def test_contrib_whose_library_is_not_installed_is_skipped(fresh: Path) -> None:
    """An instrumentor whose declared library is not installed is recorded as skipped and
    nothing is hooked."""
    _contrib_package(fresh, "ghost", "ghost_mod", "ghost-dist-not-installed")
    assert contrib.arm_contrib(_context(), set()) == []
    assert registry.status()["contrib:ghost"] == (
        "skipped", "the library it instruments is not installed")


def test_stdlib_target_is_the_module_named_like_the_entry_point(fresh: Path) -> None:
    """An instrumentor that declares no library (stdlib targets such as urllib) is armed on
    the module named like its entry point."""
    (fresh / "stdlike_mod.py").write_text("")
    _contrib_package(fresh, "stdlike_mod", "stdlike_mod", None)
    assert contrib.arm_contrib(_context(), set()) == ["stdlike_mod"]
    import stdlike_mod  # type: ignore[import-not-found]

    assert stdlike_mod.INSTRUMENTED_BY == "stdlike_mod"


def test_urllib_contrib_counts_as_our_http_client(fresh: Path) -> None:
    """The contrib ``urllib`` instrumentor competes with our http_client patch, so it is
    skipped unless preferred under either name."""
    _contrib_package(fresh, "urllib", "urllib", None)
    assert contrib.arm_contrib(_context(), {"http_client"}) == []
    assert contrib.preferred(TelemetryConfig(prefer_contrib=("urllib",))) == {"http_client"}


@pytest.mark.parametrize(("contrib_name", "ours"), [("mysql", "mysql_connector"),
                                                    ("mysqlclient", "mysqldb")])
def test_contrib_mysql_instrumentors_count_as_ours(fresh: Path, contrib_name: str,
                                                   ours: str) -> None:
    """opentelemetry-instrumentation-mysql (mysql-connector-python) and -mysqlclient
    (MySQLdb) are named unlike our patches of the same drivers: armed as well, they would
    trace every statement twice."""
    _dist(fresh, f"{contrib_name}-driver-dist", top_level=f"{contrib_name}_driver")
    (fresh / f"{contrib_name}_driver.py").write_text("")
    _contrib_package(fresh, contrib_name, f"{contrib_name}_driver",
                     f"{contrib_name}-driver-dist")
    assert contrib.arm_contrib(_context(), {ours}) == []
    state, detail = registry.status()[f"contrib:{contrib_name}"]
    assert state == "skipped" and f"instruments {ours} itself" in detail
    assert contrib.preferred(TelemetryConfig(prefer_contrib=(contrib_name,))) == {ours}


def test_modules_come_from_the_file_list_without_top_level_txt(fresh: Path) -> None:
    """A distribution without top_level.txt (as hatch and flit build them) yields its
    top-level modules from RECORD, whatever the distribution is called."""
    from importlib.metadata import distribution

    _dist(fresh, "grpc-like", record=("grpc_like/__init__.py", "grpc_like/_cy.so",
                                      "single_mod.py", "_native.cpython-311.so",
                                      "grpc_like-1.0.dist-info/METADATA", "../../bin/tool"))
    assert contrib._top_level_modules(distribution("grpc-like")) == (
        "grpc_like", "single_mod", "_native")


def test_no_scan_when_nothing_is_preferred(monkeypatch: pytest.MonkeyPatch) -> None:
    """``preferred`` does not scan entry points when TELEMETRYFLOW_PREFER_CONTRIB is empty
    (the registry asks on every start-up)."""
    def scan() -> None:
        raise AssertionError("scanned")

    monkeypatch.setattr(contrib, "installed", scan)
    assert contrib.preferred(TelemetryConfig()) == frozenset()


def test_a_failing_instrumentor_is_reported_and_the_import_still_works(fresh: Path) -> None:
    """An instrumentor that raises is recorded as failed; the program's import succeeds."""
    (fresh / "fragile_mod.py").write_text("")
    (fresh / "fake_instrumentor_fragile.py").write_text(
        "class FakeInstrumentor:\n    def instrument(self, **kw):\n        raise ValueError('x')\n")
    _dist(fresh, "fake-contrib-fragile",
          entry_points={"fragile_mod": "fake_instrumentor_fragile:FakeInstrumentor"})
    assert contrib.arm_contrib(_context(), set()) == ["fragile_mod"]
    import fragile_mod  # type: ignore[import-not-found]  # noqa: F401

    assert registry.status()["contrib:fragile_mod"] == ("failed", "ValueError: x")


# ----- through the real bootstrap, in fresh processes -----------------------------------------

_PROBE = """
    import json
    from telemetryflow_bootstrap._bootstrap import start
    from telemetryflow_bootstrap.instrumentation import registry
    from telemetryflow_bootstrap.instrumentation._method_wrappers import our_wrapper
    start()
    import requests
    status = registry.status()
    print(json.dumps({
        "ours": our_wrapper(requests.Session, "send") is not None,
        "theirs": getattr(requests, "INSTRUMENTED_BY", None),
        "ours_status": status["requests"][0],
        "theirs_status": status["contrib:requests"][0],
        "kwargs": getattr(requests, "INSTRUMENT_KWARGS", None)}))
    """


@pytest.mark.parametrize("prefer", [False, True], ids=["ours", "prefer-contrib"])
def test_bootstrap_uses_exactly_one_instrumentation_for_requests(otlp_receiver: Any,
                                                                 tmp_path: Path,
                                                                 prefer: bool) -> None:
    """With a contrib ``requests`` instrumentor installed, bootstrap patches requests with
    ours only, or — with TELEMETRYFLOW_PREFER_CONTRIB=requests — with theirs only, given our
    providers."""
    _contrib_package(tmp_path, "requests", "requests", "requests")
    env = receiver_env(otlp_receiver, PYTHONPATH=str(tmp_path))
    if prefer:
        env["TELEMETRYFLOW_PREFER_CONTRIB"] = "requests"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_PROBE)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    if prefer:
        assert seen == {"ours": False, "theirs": "requests", "ours_status": "skipped",
                        "theirs_status": "applied",
                        "kwargs": ["meter_provider", "tracer_provider"]}
    else:
        assert seen == {"ours": True, "theirs": None, "ours_status": "applied",
                        "theirs_status": "skipped", "kwargs": None}


def test_precheck_skips_the_scan_only_when_no_package_can_declare_an_instrumentor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cheap pre-check says "none" for packages without the entry point group, "maybe"
    as soon as one declares it, and "maybe" for a zip on sys.path it cannot look into."""
    plain = tmp_path / "plain"
    plain.mkdir()
    _dist(plain, "no-entry-points")
    (plain / "other-1.0.dist-info").mkdir()
    (plain / "other-1.0.dist-info" / "entry_points.txt").write_text(
        "[console_scripts]\nother = other:main\n")
    monkeypatch.setattr(sys, "path", [str(plain), str(tmp_path / "missing")])
    assert contrib._may_have_instrumentors() is False
    with_contrib = tmp_path / "with_contrib"
    with_contrib.mkdir()
    _contrib_package(with_contrib, "maybe", "maybe_mod", None)
    monkeypatch.setattr(sys, "path", [str(plain), str(with_contrib)])
    assert contrib._may_have_instrumentors() is True
    archive = tmp_path / "app.pyz"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    monkeypatch.setattr(sys, "path", [str(plain), str(archive)])
    assert contrib._may_have_instrumentors() is True


def test_no_entry_point_scan_when_the_precheck_finds_none(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without any instrumentor package ``installed()`` is empty and importlib.metadata's
    entry point scan never runs."""
    import importlib.metadata

    def scan(**kwargs: Any) -> None:
        raise AssertionError("scanned")

    monkeypatch.setattr(contrib, "_found", None)
    monkeypatch.setattr(contrib, "_may_have_instrumentors", lambda: False)
    monkeypatch.setattr(importlib.metadata, "entry_points", scan)
    assert contrib.installed() == ()
