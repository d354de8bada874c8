"""Where a run's code came from, as tags in the ``tuning.source.`` namespace.

Recorded: the git commit, dirty flag, branch and repository root of the entry point's
checkout (when there is one and ``git`` answers within a second), the Python version,
the platform, the versions of numpy, xgboost, scikit-learn, torch and pandas that are
installed, the entry point (``sys.argv[0]``) and the seed when one is given. Never
environment variables, command-line arguments or anything else that could hold a secret.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PREFIX = "tuning.source."
GIT_TIMEOUT = 1.0
# Package label -> distribution names it ships under.
PACKAGES = {"numpy": ("numpy",), "xgboost": ("xgboost", "xgboost-cpu"), "scikit-learn": ("scikit-learn",),
            "torch": ("torch",), "pandas": ("pandas",)}


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False,
            stdin=subprocess.DEVNULL,
            # Reading only: no index refresh that would take .git/index.lock under a concurrent git command.
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_tags(folder: Path) -> dict[str, str]:
    root = _git(folder, "rev-parse", "--show-toplevel")
    if not root:
        return {}
    tags = {f"{PREFIX}git.root": root}
    if commit := _git(folder, "rev-parse", "HEAD"):
        tags[f"{PREFIX}git.commit"] = commit
    branch = _git(folder, "rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":  # "HEAD": detached, no branch
        tags[f"{PREFIX}git.branch"] = branch
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    if status is not None:
        tags[f"{PREFIX}git.dirty"] = "true" if status else "false"
    return tags


def package_versions() -> dict[str, str]:
    versions = {}
    for label, distributions in PACKAGES.items():
        for distribution in distributions:
            try:
                versions[label] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def entry_point() -> Path | None:
    """The script being run, when there is one (not ``python -c`` or an interactive session)."""
    script = sys.argv[0] if sys.argv else ""
    if not script or script == "-c" or not os.path.isfile(script):
        return None
    return Path(script).resolve()


def source_tags(*, seed: int | None = None, config_path: str | os.PathLike | None = None) -> dict[str, str]:
    """The ``tuning.source.*`` tags for a new run."""
    script = entry_point()
    tags = git_tags(script.parent if script else Path.cwd())
    tags[f"{PREFIX}python"] = platform.python_version()
    tags[f"{PREFIX}platform"] = platform.platform()
    for label, version in package_versions().items():
        tags[f"{PREFIX}package.{label}"] = version
    if script is not None:
        tags[f"{PREFIX}entry_point"] = str(script)
    if config_path is not None:
        tags[f"{PREFIX}config"] = str(Path(config_path).resolve())
    if seed is not None:
        tags[f"{PREFIX}seed"] = str(seed)
    return tags


__all__ = ["PREFIX", "entry_point", "git_tags", "package_versions", "source_tags"]
