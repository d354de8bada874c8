"""Models as folders of files, to be logged as run artifacts: XGBoost and scikit-learn.

A saved model is a folder with ``model.yaml`` (MLflow's ``MLmodel``, smaller: the flavor,
the model's class, its file, the Python and library versions) next to the model file:

- XGBoost (a ``Booster`` or a scikit-learn wrapper such as ``XGBClassifier``): the
  library's own JSON format, ``model.json``, portable across XGBoost versions and safe to
  load from anywhere (it is data, not code).
- scikit-learn estimators (pipelines included): ``model.pkl``, written with :mod:`pickle`.
  Unpickling runs code chosen by whoever wrote the file: load only models you trust, such
  as those your own runs logged.

xgboost and scikit-learn are imported only when a model of theirs is saved or loaded.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

META_FILE = "model.yaml"
FORMAT_VERSION = 1
XGBOOST, SKLEARN = "xgboost", "sklearn"
_BOOSTER = "xgboost.Booster"
# Distribution names to report, per flavor (xgboost also ships as xgboost-cpu).
_LIBRARIES = {XGBOOST: {"xgboost": ("xgboost", "xgboost-cpu"), "numpy": ("numpy",)},
              SKLEARN: {"scikit-learn": ("scikit-learn",), "numpy": ("numpy",)}}


@dataclass(frozen=True)
class ModelMeta:
    """What ``model.yaml`` records."""

    flavor: str
    model_class: str
    model_file: str
    python: str = field(default_factory=platform.python_version)
    libraries: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_yaml(self) -> str:
        return yaml.safe_dump({"format_version": self.format_version, "flavor": self.flavor,
                               "class": self.model_class, "file": self.model_file, "python": self.python,
                               "libraries": self.libraries}, sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> ModelMeta:
        data = yaml.safe_load(text)
        if not isinstance(data, dict) or not {"flavor", "class", "file"} <= data.keys():
            raise ValueError(f"{META_FILE} must map flavor, class and file")
        return cls(str(data["flavor"]), str(data["class"]), str(data["file"]), str(data.get("python", "")),
                   {str(k): str(v) for k, v in (data.get("libraries") or {}).items()},
                   int(data.get("format_version", FORMAT_VERSION)))


def _require(module: str, package: str, purpose: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{purpose} needs {package}: pip install {package}") from error


def _versions(flavor: str) -> dict[str, str]:
    found = {}
    for label, distributions in _LIBRARIES[flavor].items():
        for distribution in distributions:
            try:
                found[label] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def _class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def flavor_of(model: Any) -> str:
    """``xgboost`` or ``sklearn``; TypeError for anything else."""
    root = type(model).__module__.split(".")[0]
    if root == "xgboost":
        return XGBOOST
    if root == "sklearn":
        return SKLEARN
    # Estimators of other libraries built on scikit-learn's base class: if it was never imported,
    # the model cannot be one.
    base = sys.modules.get("sklearn.base")
    if base is not None and isinstance(model, base.BaseEstimator):
        return SKLEARN
    raise TypeError(f"cannot save a {_class_name(model)}: log_model knows XGBoost models (Booster, XGBClassifier, "
                    "XGBRegressor, ...) and scikit-learn estimators")


def save_model(model: Any, path: str | os.PathLike) -> ModelMeta:
    """Writes ``model`` and its ``model.yaml`` into the folder ``path`` (created if needed)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    flavor = flavor_of(model)
    if flavor == XGBOOST:
        xgb = _require("xgboost", "xgboost", "saving an XGBoost model")
        if isinstance(model, xgb.Booster):
            model_class = _BOOSTER
        elif isinstance(model, xgb.XGBModel):
            model_class = _class_name(model)
        else:
            raise TypeError(f"cannot save a {_class_name(model)}: expected an xgboost Booster or XGBModel")
        meta = ModelMeta(XGBOOST, model_class, "model.json", libraries=_versions(XGBOOST))
        model.save_model(str(folder / meta.model_file))
    else:
        meta = ModelMeta(SKLEARN, _class_name(model), "model.pkl", libraries=_versions(SKLEARN))
        with (folder / meta.model_file).open("wb") as file:
            pickle.dump(model, file, protocol=pickle.HIGHEST_PROTOCOL)
    (folder / META_FILE).write_text(meta.to_yaml(), encoding="utf-8")
    return meta


def read_meta(path: str | os.PathLike) -> ModelMeta:
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} holds no {META_FILE}: not a model saved by log_model")
    return ModelMeta.from_yaml(meta_path.read_text(encoding="utf-8"))


def load_model(path: str | os.PathLike) -> Any:
    """Rebuilds the model saved in the folder ``path`` (a Booster, an XGBClassifier, an estimator, ...).

    A scikit-learn model is unpickled: only load models you trust.
    """
    folder = Path(path)
    meta = read_meta(folder)
    model_file = folder / meta.model_file
    if model_file.parent != folder:
        raise ValueError(f"{META_FILE} names a model file outside its folder: {meta.model_file!r}")
    if meta.flavor not in _LIBRARIES:
        raise ValueError(f"unknown model flavor {meta.flavor!r} in {folder / META_FILE}")
    for label, version in _versions(meta.flavor).items():
        saved = meta.libraries.get(label)
        if saved and saved != version:
            log.warning("model saved with %s %s, loading with %s", label, saved, version)
    if meta.flavor == XGBOOST:
        return _load_xgboost(meta, model_file)
    _require("sklearn", "scikit-learn", "loading a scikit-learn model")
    with model_file.open("rb") as file:
        return pickle.load(file)  # trusted content only, as documented


def _load_xgboost(meta: ModelMeta, model_file: Path) -> Any:
    xgb = _require("xgboost", "xgboost", "loading an XGBoost model")
    if meta.model_class == _BOOSTER:
        model = xgb.Booster()
    else:
        module, _, name = meta.model_class.rpartition(".")
        # Only XGBoost's own classes: the metadata must not be a way to instantiate anything.
        cls = getattr(importlib.import_module(module), name, None) if module.split(".")[0] == "xgboost" else None
        if not (isinstance(cls, type) and issubclass(cls, xgb.XGBModel)):
            raise ValueError(f"{META_FILE} names {meta.model_class!r}, not an XGBoost model class")
        model = cls()
    model.load_model(str(model_file))
    return model


__all__ = ["META_FILE", "ModelMeta", "flavor_of", "load_model", "read_meta", "save_model"]
