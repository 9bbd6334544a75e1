"""``telemetryflow-run init``: the env file and Dockerfile it writes, run as installed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from telemetryflow_bootstrap.domain.config import load_config
from telemetryflow_bootstrap.domain.environment import VARIABLES
from telemetryflow_bootstrap.domain.signals import Protocol

from .launcher import clean_env, run

pytestmark = pytest.mark.e2e

_ENV_FILE = ".env.telemetryflow"
_DOCKERFILE = "Dockerfile.telemetryflow"
_GIVEN = ["--service-name", "checkout", "--endpoint", "http://collector:4318", "--protocol", "http"]


def _init(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(["init", "--dir", str(directory), *args], clean_env())


def _parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, comments and blank lines ignored (what `docker --env-file` reads)."""
    settings = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, line
            settings[key] = value
    return settings


def test_init_writes_both_files_and_says_how_to_run(tmp_path: Path) -> None:
    """Both files are written and the run instructions are printed."""
    proc = _init(tmp_path, *_GIVEN)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / _ENV_FILE).is_file()
    assert (tmp_path / _DOCKERFILE).is_file()
    assert "set -a; . " in proc.stdout
    assert "; set +a; telemetryflow-run python app.py" in proc.stdout


def test_env_file_lists_every_variable_with_the_given_ones_active(tmp_path: Path) -> None:
    """Every variable appears; only the given ones are uncommented."""
    assert _init(tmp_path, *_GIVEN).returncode == 0
    text = (tmp_path / _ENV_FILE).read_text()
    for var in VARIABLES:
        assert f"{var.name}=" in text, var.name
        assert f"# {var.help}\n" in text, var.name
    assert _parse_env_file(tmp_path / _ENV_FILE) == {
        "TELEMETRYFLOW_SERVICE_NAME": "checkout",
        "TELEMETRYFLOW_ENDPOINT": "http://collector:4318",
        "TELEMETRYFLOW_PROTOCOL": "http",
    }


def test_env_file_loads_as_a_clean_configuration(tmp_path: Path) -> None:
    """Loaded as an environment, the file gives a config with no problems and the values."""
    assert _init(tmp_path, *_GIVEN).returncode == 0
    config, reading = load_config(_parse_env_file(tmp_path / _ENV_FILE))
    assert reading.problems == []
    assert reading.warnings == []
    assert config.service_name == "checkout"
    assert config.endpoint == "http://collector:4318"
    assert config.protocol is Protocol.HTTP


def test_env_file_reads_the_same_in_a_shell(tmp_path: Path) -> None:
    """`set -a; . file` in sh exports exactly what the KEY=VALUE parser reads."""
    proc = _init(tmp_path, "--service-name", "checkout", "--endpoint", "collector:4317")
    assert proc.returncode == 0, proc.stderr
    script = f"set -a; . {tmp_path / _ENV_FILE}; set +a; env"
    proc = subprocess.run(
        ["sh", "-c", script],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    exported = dict(
        line.partition("=")[::2]
        for line in proc.stdout.splitlines()
        if line.startswith("TELEMETRYFLOW_")
    )
    assert exported == _parse_env_file(tmp_path / _ENV_FILE)


def test_dockerfile_uses_the_launcher_as_entrypoint(tmp_path: Path) -> None:
    """The Dockerfile runs the program through telemetryflow-run in exec form."""
    (tmp_path / "main.py").write_text("print('hi')\n")
    assert _init(tmp_path).returncode == 0
    lines = (tmp_path / _DOCKERFILE).read_text().splitlines()
    assert 'ENTRYPOINT ["telemetryflow-run"]' in lines
    assert 'CMD ["python", "main.py"]' in lines
    assert any(line.startswith("FROM python:") for line in lines)


def test_existing_files_are_not_overwritten_without_force(tmp_path: Path) -> None:
    """A second init exits 1 naming the file and leaves it untouched."""
    (tmp_path / _ENV_FILE).write_text("MINE=1\n")
    proc = _init(tmp_path, *_GIVEN)
    assert proc.returncode == 1
    assert str(tmp_path / _ENV_FILE) in proc.stderr
    assert "--force" in proc.stderr
    assert (tmp_path / _ENV_FILE).read_text() == "MINE=1\n"
    assert not (tmp_path / _DOCKERFILE).exists()  # nothing is half-written


def test_force_overwrites(tmp_path: Path) -> None:
    """With --force both files are replaced."""
    (tmp_path / _ENV_FILE).write_text("MINE=1\n")
    (tmp_path / _DOCKERFILE).write_text("FROM scratch\n")
    proc = _init(tmp_path, "--force", *_GIVEN)
    assert proc.returncode == 0, proc.stderr
    assert _parse_env_file(tmp_path / _ENV_FILE)["TELEMETRYFLOW_SERVICE_NAME"] == "checkout"
    assert 'ENTRYPOINT ["telemetryflow-run"]' in (tmp_path / _DOCKERFILE).read_text()


def test_invalid_value_is_refused_before_writing(tmp_path: Path) -> None:
    """An endpoint the launcher would reject exits 2 naming it, and writes nothing."""
    proc = _init(tmp_path, "--endpoint", "not a url")
    assert proc.returncode == 2
    assert "TELEMETRYFLOW_ENDPOINT" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_launcher_options_before_init_are_written_too(tmp_path: Path) -> None:
    """`telemetryflow-run --environment prod init` writes TELEMETRYFLOW_ENVIRONMENT."""
    proc = run(["--environment", "prod", "--insecure", "init", "--dir", str(tmp_path)], clean_env())
    assert proc.returncode == 0, proc.stderr
    assert _parse_env_file(tmp_path / _ENV_FILE) == {
        "TELEMETRYFLOW_ENVIRONMENT": "prod",
        "TELEMETRYFLOW_INSECURE": "true",
    }


def test_value_a_shell_would_need_quoted_is_refused(tmp_path: Path) -> None:
    """A value sh and `docker --env-file` would read differently exits 2, nothing written."""
    proc = _init(tmp_path, "--service-name", "my shop")
    assert proc.returncode == 2
    assert "TELEMETRYFLOW_SERVICE_NAME" in proc.stderr
    assert list(tmp_path.iterdir()) == []
