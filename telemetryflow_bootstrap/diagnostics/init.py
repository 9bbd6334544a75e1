"""``telemetryflow-run init``: a commented ``.env.telemetryflow`` and a Dockerfile to start from.

The env file lists every variable of the table, so a user discovers the settings by reading
one file; only the ones given on the command line are active, the rest stay commented with
their default. It is written for both readers that matter: a POSIX shell
(``set -a; . ./.env.telemetryflow; set +a``) and ``docker run --env-file``, which takes values
literally — so only values that need no quoting are accepted.

Nothing is ever overwritten without ``--force``: both targets are checked before either is
written (no half-written pair), and files are created with ``O_EXCL`` so a file appearing in
between is not clobbered either. The env file is created ``0600``: it is where the API key
secret will be pasted.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from .._version import __version__
from ..domain.environment import VARIABLES, Variable, read_environment

__all__ = [
    "DOCKERFILE",
    "ENV_FILE",
    "InitRefused",
    "notes",
    "problems",
    "render_dockerfile",
    "render_env_file",
    "run_instructions",
    "write",
]

ENV_FILE = ".env.telemetryflow"
DOCKERFILE = "Dockerfile.telemetryflow"

# What both `sh` and `docker --env-file` read the same way (no quotes needed).
_SHELL_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]*")
_SCRIPTS = ("app.py", "main.py")


class InitRefused(Exception):
    """A target exists and ``--force`` was not given; names every such file."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        names = " and ".join(str(path) for path in paths)
        verb = "exists" if len(paths) == 1 else "exist"
        super().__init__(
            f"{names} already {verb}; not overwriting "
            f"{'it' if len(paths) == 1 else 'them'} (use --force to replace)"
        )


def problems(settings: Mapping[str, str]) -> list[str]:
    """Why ``settings`` cannot be written: what the launcher would reject, and values a
    shell would need quoted — ``docker --env-file`` keeps quotes, so the two readers of the
    file would see different values."""
    found = [str(problem) for problem in read_environment(settings).problems]
    found.extend(
        f"{name}={value!r}: a value without spaces, quotes or shell characters is "
        "needed here (sh and docker --env-file must read it alike); edit the file "
        "by hand for anything else"
        for name, value in settings.items()
        if not _SHELL_SAFE.fullmatch(value)
    )
    return found


def render_env_file(settings: Mapping[str, str]) -> str:
    lines = [
        f"# telemetryflow-run configuration, written by `telemetryflow-run init` ({__version__}).",
        "#",
        "# Use it from a shell:",
        f"#   set -a; . ./{ENV_FILE}; set +a; telemetryflow-run python app.py",
        "# or with Docker:  docker run --env-file " + ENV_FILE + " IMAGE",
        "# Check it:        telemetryflow-run doctor   (after loading it as above)",
        "#",
        "# Active lines are the settings given to `init`; every other supported variable",
        "# follows, commented out, with its default. Docker's --env-file takes values",
        "# literally: do not quote them. Keep this file out of version control once it holds",
        "# the API key secret.",
    ]
    for var in VARIABLES:
        lines.append("")
        lines.append(f"# {var.help}")
        default = f"# default: {var.default}"
        if var.fallbacks:
            default += f"; also read from {', '.join(var.fallbacks)}"
        lines.append(default)
        if var.name in settings:
            lines.append(f"{var.name}={settings[var.name]}")
        else:
            lines.append(f"# {var.name}={_literal_default(var)}")
    return "\n".join(lines) + "\n"


def _literal_default(var: Variable) -> str:
    """The default as a value to uncomment, when it is one (``grpc``, ``5000``); empty for
    descriptions like ``(none)`` or ``otlp (console when no endpoint is set)``."""
    default = var.default
    if not default or default.startswith("(") or " " in default:
        return ""
    try:
        var.parse(default)
    except ValueError:
        return ""
    return default


def render_dockerfile(directory: Path) -> str:
    """A Dockerfile for the app in ``directory``, using its requirements.txt and script when
    they are there (so it builds as written in the common case)."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    script = next((name for name in _SCRIPTS if (directory / name).is_file()), _SCRIPTS[0])
    if (directory / "requirements.txt").is_file():
        install = [
            "COPY requirements.txt ./",
            "RUN pip install --no-cache-dir -r requirements.txt telemetryflow-bootstrap",
        ]
    else:
        install = [
            "# add your app's dependencies here (or a requirements.txt)",
            "RUN pip install --no-cache-dir telemetryflow-bootstrap",
        ]
    return (
        "\n".join(
            [
                f"# Written by `telemetryflow-run init` ({__version__}): runs the app under",
                "# telemetryflow-run. Adapt it, then:",
                f"#   docker build -f {DOCKERFILE} -t my-app .",
                f"#   docker run --env-file {ENV_FILE} my-app",
                f"FROM python:{python}-slim",
                "ENV PYTHONUNBUFFERED=1",
                "WORKDIR /app",
                *install,
                "# Keep the API key out of the image: list .env.telemetryflow in .dockerignore.",
                "COPY . .",
                "# Exec form (JSON), no shell in between: telemetryflow-run starts as",
                "# PID 1 and execs the program, which keeps PID 1 and receives",
                "# `docker stop`'s SIGTERM itself; telemetry is flushed before it exits.",
                "# If the program starts child processes, run the container with",
                "# `docker run --init` so their zombies are reaped.",
                'ENTRYPOINT ["telemetryflow-run"]',
                f'CMD ["python", "{script}"]',
            ]
        )
        + "\n"
    )


def write(directory: Path, settings: Mapping[str, str], *, force: bool) -> list[Path]:
    """Write both files into ``directory``; raises ``InitRefused`` before writing anything
    when one exists and ``force`` is false."""
    targets = [directory / ENV_FILE, directory / DOCKERFILE]
    existing = [path for path in targets if path.exists() or path.is_symlink()]
    if existing and not force:
        raise InitRefused(existing)
    directory.mkdir(parents=True, exist_ok=True)
    contents = {
        targets[0]: (render_env_file(settings), 0o600),
        targets[1]: (render_dockerfile(directory), 0o644),
    }
    for path, (text, mode) in contents.items():
        _write_file(path, text, mode, force=force)
    return targets


def _write_file(path: Path, text: str, mode: int, *, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise InitRefused([path]) from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


def notes(settings: Mapping[str, str]) -> list[str]:
    """What the written configuration will do that a user may not expect."""
    endpoint = settings.get("TELEMETRYFLOW_ENDPOINT")
    if endpoint is None:
        return [
            f"no endpoint given: telemetry is printed on stderr until TELEMETRYFLOW_ENDPOINT "
            f"is set in {ENV_FILE}"
        ]
    if "://" not in endpoint and settings.get("TELEMETRYFLOW_INSECURE") != "true":
        return [
            f"{endpoint} has no scheme, so TLS is used; for a collector without TLS use "
            f"http://{endpoint}"
        ]
    return []


def run_instructions(directory: Path) -> str:
    where = os.path.relpath(directory)
    env_file = ENV_FILE if where == os.curdir else os.path.join(where, ENV_FILE)
    load = f"set -a; . {shlex.quote(os.path.join(os.curdir, env_file))}; set +a"
    dockerfile = DOCKERFILE if where == os.curdir else os.path.join(where, DOCKERFILE)
    return "\n".join(
        [
            "Run your program with it:",
            f"  {load}; telemetryflow-run python app.py",
            "Check the setup (configuration, collector reachable, credentials accepted):",
            f"  {load}; telemetryflow-run doctor",
            "In a container:",
            f"  docker build -f {dockerfile} -t my-app {shlex.quote(where)}",
            f"  docker run --env-file {env_file} my-app",
        ]
    )
