"""Finding the train function a worker was told to run (``--train package.module:function`` or
``--train path/to/file.py:function``), for the worker's command line and for its Ray tasks."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_callable(spec: str) -> Callable[..., Any]:
    """``package.module:function`` or ``path/to/file.py:function``."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"--train must look like package.module:function or file.py:function, got {spec!r}")
    if module_name.endswith(".py"):
        path = Path(module_name).resolve()
        if not path.is_file():
            raise ValueError(f"--train: no file {module_name}")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        _import(module_name, lambda: module_spec.loader.exec_module(module))
    else:
        # Like `python -m`: modules next to where the worker was started are importable.
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = _import(module_name, lambda: importlib.import_module(module_name))
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ValueError(f"--train: {module_name} has no {attribute}")
    if not callable(target):
        raise ValueError(f"--train: {spec} is not callable")
    return target


def _import(name: str, load: Callable[[], Any]) -> Any:
    """``load()``, with what went wrong on one line: the module is missing, or importing it failed."""
    try:
        return load()
    except ModuleNotFoundError as error:
        if error.name and name.split(".")[0] == error.name.split(".")[0]:
            raise ValueError(f"--train: no module named {error.name!r} here ({os.getcwd()}); give "
                             "package.module:function importable from here, or path/to/file.py:function") from None
        raise ValueError(f"--train: importing {name} failed: {error}") from None
    except SyntaxError as error:
        raise ValueError(f"--train: {error.filename}:{error.lineno}: {error.msg}") from None
    except Exception as error:  # the user's module failed as it was imported: say how, in one line
        raise ValueError(f"--train: importing {name} failed: {type(error).__name__}: {error}") from None
