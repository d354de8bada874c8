"""Study files for `tuning study create`, `tuning worker --study-file` and `tuning study export`.

The form people write, in the Python API's words (:mod:`trial_worker.space`,
``SuggestionClient.create_study``)::

    name: xgb-wine
    parameters:
      - {name: learning_rate, type: float, low: 0.001, high: 0.3, log: true}
      - {name: max_depth, type: int, low: 2, high: 10}
      - {name: booster, type: categorical, choices: [gbtree, dart]}
      - {name: rate_drop, type: float, low: 0.0, high: 0.3, when: {booster: dart}}
      - {name: random_state, type: fixed, value: 42}
    objectives:
      - {metric: val_f1, direction: maximize}
    algorithm: tpe                  # default auto; algorithm_settings: {...}
    seed: 7
    max_trials: 50
    max_parallel_trials: 8
    lease_seconds: 120
    max_retries: 2
    fidelity: {name: boosting_rounds, min: 10, max: 300, reduction_factor: 3}
    pruner: asha                    # pruner_settings: {metric: val_logloss, direction: minimize}
    prior_studies: [xgb-wine-2025]  # learn from earlier studies (transfer learning)

An objective item may carry ``reference_point: 0.5`` (a multi-objective study's hypervolume
reference, in the metric's units). ``objectives`` may also be a mapping, ``{val_f1: maximize}``. A file with a top-level
``spec`` is the older form, a CreateStudyRequest in proto JSON (``DIRECTION_MAXIMIZE``,
``{string_value: dart}``), still read. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from trial_worker.space import Categorical, Fixed, Float, Int
from tuning.suggestion.v1 import study_pb2 as pb
from tuning.suggestion.v1 import suggestion_service_pb2 as api
from tuning_types import convert
from tuning_types.space import (
    CategoricalDomain,
    FixedDomain,
    FloatDomain,
    IntDomain,
    Parameter,
    SearchSpace,
)
from tuning_types.study import (
    DEFAULT_ALGORITHM,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_REDUCTION_FACTOR,
    AlgorithmSpec,
    Direction,
    Fidelity,
    Objective,
    PrunerSpec,
    RetryPolicy,
    StudySpec,
)

_STUDY_KEYS = ("name", "parameters", "objectives", "algorithm", "algorithm_settings", "seed", "max_trials",
               "max_parallel_trials", "lease_seconds", "max_retries", "retry_failed", "fidelity", "pruner",
               "pruner_settings", "constraints", "prior_studies")
_TYPES: dict[str, tuple[Callable[..., Parameter], tuple[str, ...]]] = {
    "float": (Float, ("low", "high", "log", "step")),
    "int": (Int, ("low", "high", "log", "step")),
    "categorical": (Categorical, ("choices",)),
    "fixed": (Fixed, ("value",)),
}
_FIDELITY_KEYS = ("name", "min", "max", "reduction_factor")


class StudyFileError(ValueError):
    """What is wrong with a study file, naming the key."""


def load(path: str | os.PathLike) -> api.CreateStudyRequest:
    """A CreateStudyRequest from a YAML or JSON study file, in either form."""
    import yaml
    from google.protobuf import json_format

    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except FileNotFoundError:
        raise StudyFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise StudyFileError(f"{path}: cannot read it: {getattr(error, 'strerror', None) or error}") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise StudyFileError(f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML: "
                             f"{error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise StudyFileError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise StudyFileError(f"{path}: expected a mapping with `name`, `parameters` and `objectives`")
    if "spec" in document:  # the older proto JSON form
        try:
            return json_format.ParseDict(document, api.CreateStudyRequest())
        except json_format.ParseError as error:
            raise StudyFileError(f"{path}: {error}") from None
    try:
        name, spec = from_dict(document)
    except StudyFileError as error:
        raise StudyFileError(f"{path}: {error}") from None
    message = convert.spec_to_proto(spec)
    if spec.seed is None:
        message.ClearField("seed")
    if document.get("algorithm") is None:  # auto for a new study; an existing one keeps its own
        message.ClearField("algorithm")
    return api.CreateStudyRequest(name=name, spec=message)


def from_dict(document: Mapping[str, Any]) -> tuple[str, StudySpec]:
    """The study's name and spec from the human form."""
    _known(document, _STUDY_KEYS, "")
    name = _get(document, "name", str, "", required=True)
    parameters = _get(document, "parameters", list, "", required=True)
    objectives = _objectives(_get(document, "objectives", (list, dict), "", required=True))
    fidelity = _get(document, "fidelity", dict, "")
    pruner = _get(document, "pruner", str, "")
    pruner_settings = _get(document, "pruner_settings", dict, "")
    if pruner_settings is not None and pruner is None:
        raise StudyFileError("pruner_settings: needs a pruner")
    algorithm_settings = _get(document, "algorithm_settings", dict, "") or {}
    if algorithm_settings and document.get("algorithm") is None:
        raise StudyFileError("algorithm_settings: needs an algorithm (the settings are that algorithm's)")
    constraints = _get(document, "constraints", list, "") or []
    for i, constraint in enumerate(constraints):
        if not isinstance(constraint, str):
            raise StudyFileError(f"constraints[{i}]: expected a constraint name, got {constraint!r:.60}")
    prior_studies = _get(document, "prior_studies", list, "") or []
    for i, prior in enumerate(prior_studies):
        if not isinstance(prior, str):
            raise StudyFileError(f"prior_studies[{i}]: expected a study name, got {prior!r:.60}")
    return name, StudySpec(
        space=SearchSpace(tuple(_parameter(p, f"parameters[{i}]") for i, p in enumerate(parameters))),
        objectives=objectives,
        algorithm=AlgorithmSpec(_get(document, "algorithm", str, "") or DEFAULT_ALGORITHM, dict(algorithm_settings)),
        seed=_get(document, "seed", int, ""),
        max_trials=_get(document, "max_trials", int, "") or 0,
        max_parallel_trials=_get(document, "max_parallel_trials", int, "") or 0,
        lease_seconds=float(_number(document, "lease_seconds", "", DEFAULT_LEASE_SECONDS)),
        retry_policy=RetryPolicy(_get(document, "max_retries", int, "", DEFAULT_MAX_RETRIES),
                                 _get(document, "retry_failed", bool, "", False)),
        fidelity=None if fidelity is None else _fidelity(fidelity),
        pruner=None if pruner is None else PrunerSpec(pruner, dict(pruner_settings or {})),
        constraints=tuple(constraints),
        prior_studies=tuple(prior_studies),
    )


def _parameter(item: Any, where: str) -> Parameter:
    if not isinstance(item, dict):
        raise StudyFileError(f"{where}: expected a mapping like {{name: x, type: float, low: 0, high: 1}}")
    kind = _get(item, "type", str, where, required=True)
    if kind not in _TYPES:
        raise StudyFileError(f"{where}.type: must be one of {', '.join(_TYPES)}, got {kind!r}")
    build, keys = _TYPES[kind]
    _known(item, ("name", "type", "when", *keys), where)
    name = _get(item, "name", str, where, required=True)
    when = _get(item, "when", dict, where)
    if when is not None and len(when) != 1:
        raise StudyFileError(f"{where}.when: takes exactly one parent parameter, e.g. {{booster: dart}}")
    if kind == "categorical":
        return build(name, _get(item, "choices", list, where, required=True), when=when)
    if kind == "fixed":
        if "value" not in item:
            raise StudyFileError(f"{where}.value: is required for a fixed parameter")
        return build(name, item["value"], when=when)
    return build(name, _number(item, "low", where), _number(item, "high", where),
                 log=_get(item, "log", bool, where, False), step=_number(item, "step", where, None), when=when)


def _objectives(value: list | dict) -> tuple[Objective, ...]:
    if isinstance(value, dict):
        pairs = [(metric, direction, f"objectives.{metric}", None) for metric, direction in value.items()]
    else:
        pairs = []
        for i, item in enumerate(value):
            where = f"objectives[{i}]"
            if not isinstance(item, dict):
                raise StudyFileError(f"{where}: expected {{metric: val_f1, direction: maximize}}")
            _known(item, ("metric", "direction", "reference_point"), where)
            reference = _number(item, "reference_point", where, None)
            pairs.append((_get(item, "metric", str, where, required=True),
                          _get(item, "direction", str, where, required=True), f"{where}.direction",
                          None if reference is None else float(reference)))
    words = [d.value for d in Direction]
    for _, direction, where, _ in pairs:
        if direction not in words:
            raise StudyFileError(f"{where}: must be minimize or maximize, got {direction!r}")
    return tuple(Objective(str(metric), Direction(direction), reference) for metric, direction, _, reference in pairs)


def _fidelity(value: dict) -> Fidelity:
    _known(value, _FIDELITY_KEYS, "fidelity")
    return Fidelity(_get(value, "name", str, "fidelity", required=True),
                    float(_number(value, "min", "fidelity")), float(_number(value, "max", "fidelity")),
                    float(_number(value, "reduction_factor", "fidelity", DEFAULT_REDUCTION_FACTOR)))


_REQUIRED = object()


def _known(item: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in item:
        if key not in keys:
            raise StudyFileError(f"{_at(where, key)}: unknown key; expected one of: {', '.join(keys)}")


def _at(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def _get(item: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None, *,
         required: bool = False) -> Any:
    if key not in item or item[key] is None:
        if required:
            raise StudyFileError(f"{_at(where, key)}: is required")
        return default
    value = item[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # YAML's `true` is an int to Python; `1` is no bool.
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        names = " or ".join({list: "a list", dict: "a mapping", str: "a string", int: "an integer",
                             bool: "true or false"}[k] for k in kinds)
        raise StudyFileError(f"{_at(where, key)}: must be {names}, got {value!r}")
    return value


def _number(item: Mapping[str, Any], key: str, where: str, default: Any = _REQUIRED) -> Any:
    if key not in item or item[key] is None:
        if default is _REQUIRED:
            raise StudyFileError(f"{_at(where, key)}: is required")
        return default
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StudyFileError(f"{_at(where, key)}: must be a number, got {value!r}")
    return value


# --- writing -----------------------------------------------------------------------------------


def to_dict(name: str, spec: pb.StudySpec) -> dict[str, Any]:
    """The human form of a study (what :func:`load` reads back to the same spec)."""
    study = convert.spec_from_proto(spec)
    document: dict[str, Any] = {"name": name, "parameters": [_parameter_dict(p) for p in study.space.parameters],
                                "objectives": [{"metric": o.metric, "direction": o.direction.value,
                                                **({} if o.reference_point is None
                                                   else {"reference_point": _plain(o.reference_point)})}
                                               for o in study.objectives],
                                "algorithm": study.algorithm.name}
    if study.algorithm.settings:
        document["algorithm_settings"] = _plain(study.algorithm.settings)
    if study.seed is not None:
        document["seed"] = study.seed
    for key in ("max_trials", "max_parallel_trials"):
        if getattr(study, key):
            document[key] = getattr(study, key)
    document["lease_seconds"] = _plain(study.lease_seconds)
    document["max_retries"] = study.retry_policy.max_retries
    if study.retry_policy.retry_failed:
        document["retry_failed"] = True
    if study.fidelity is not None:
        document["fidelity"] = {key: _plain(getattr(study.fidelity, key)) for key in _FIDELITY_KEYS}
    if study.pruner is not None:
        document["pruner"] = study.pruner.name
        if study.pruner.settings:
            document["pruner_settings"] = _plain(study.pruner.settings)
    if study.constraints:
        document["constraints"] = list(study.constraints)
    if study.prior_studies:
        document["prior_studies"] = list(study.prior_studies)
    return document


def dump(name: str, spec: pb.StudySpec) -> str:
    """The human form as YAML, a parameter or objective per line."""
    lines = []
    for key, value in to_dict(name, spec).items():
        if key in ("parameters", "objectives"):
            lines += [f"{key}:", *(f"  - {_flow(item)}" for item in value)]
        else:
            lines.append(f"{key}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def _flow(value: Any) -> str:
    import yaml

    # A one-item list in flow style, brackets removed: YAML quotes what needs quoting.
    return yaml.safe_dump([value], default_flow_style=True, sort_keys=False, allow_unicode=True,
                          width=math.inf).strip()[1:-1]


def _parameter_dict(parameter: Parameter) -> dict[str, Any]:
    domain = parameter.domain
    item: dict[str, Any] = {"name": parameter.name}
    if isinstance(domain, (FloatDomain, IntDomain)):
        item.update(type="float" if isinstance(domain, FloatDomain) else "int", low=domain.low, high=domain.high)
        if domain.log:
            item["log"] = True
        if domain.step is not None:
            item["step"] = domain.step
    elif isinstance(domain, CategoricalDomain):
        item.update(type="categorical", choices=list(domain.choices))
    elif isinstance(domain, FixedDomain):
        item.update(type="fixed", value=domain.value)
    if parameter.condition is not None:
        values = list(parameter.condition.values)
        item["when"] = {parameter.condition.parent: values[0] if len(values) == 1 else values}
    return item


def _plain(value: Any) -> Any:
    """Struct settings come back as doubles: 4.0 reads better as 4 (and means the same)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
