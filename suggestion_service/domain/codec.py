"""A study spec as plain JSON-able data, for storage and for comparing two specs exactly.

Values keep their JSON types (``true`` is not ``1``), so the encoded form is canonical.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from tuning_types.space import (
    CategoricalDomain,
    Condition,
    FixedDomain,
    FloatDomain,
    IntDomain,
    Parameter,
    SearchSpace,
)
from tuning_types.study import (
    AlgorithmSpec,
    Direction,
    Fidelity,
    Objective,
    PrunerSpec,
    RetryPolicy,
    StudySpec,
)


def _domain_to_dict(domain) -> dict[str, Any]:
    if isinstance(domain, FloatDomain):
        return {"type": "float", "low": domain.low, "high": domain.high, "log": domain.log, "step": domain.step}
    if isinstance(domain, IntDomain):
        return {"type": "int", "low": domain.low, "high": domain.high, "log": domain.log, "step": domain.step}
    if isinstance(domain, CategoricalDomain):
        return {"type": "categorical", "choices": list(domain.choices)}
    return {"type": "fixed", "value": domain.value}


def _domain_from_dict(data: dict[str, Any]):
    kind = data["type"]
    if kind == "float":
        return FloatDomain(data["low"], data["high"], data["log"], data["step"])
    if kind == "int":
        return IntDomain(data["low"], data["high"], data["log"], data["step"])
    if kind == "categorical":
        return CategoricalDomain(tuple(data["choices"]))
    return FixedDomain(data["value"])


def spec_to_dict(spec: StudySpec) -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": p.name,
                "domain": _domain_to_dict(p.domain),
                "condition": None
                if p.condition is None
                else {"parent": p.condition.parent, "values": list(p.condition.values)},
            }
            for p in spec.space
        ],
        "objectives": [
            {"metric": o.metric, "direction": o.direction.value,
             # Only when set, so that specs without one keep their canonical form.
             **({} if o.reference_point is None else {"reference_point": o.reference_point})}
            for o in spec.objectives
        ],
        "algorithm": {"name": spec.algorithm.name, "settings": spec.algorithm.settings},
        "seed": spec.seed,
        "max_trials": spec.max_trials,
        "max_parallel_trials": spec.max_parallel_trials,
        "lease_seconds": spec.lease_seconds,
        "retry_policy": {
            "max_retries": spec.retry_policy.max_retries,
            "retry_failed": spec.retry_policy.retry_failed,
        },
        "fidelity": None if spec.fidelity is None else {
            "name": spec.fidelity.name, "min": spec.fidelity.min, "max": spec.fidelity.max,
            "reduction_factor": spec.fidelity.reduction_factor,
        },
        "pruner": None if spec.pruner is None else {"name": spec.pruner.name, "settings": spec.pruner.settings},
        "constraints": list(spec.constraints),
        # Only when set, so that specs without priors keep their canonical form.
        **({"prior_studies": list(spec.prior_studies)} if spec.prior_studies else {}),
    }


def spec_from_dict(data: dict[str, Any]) -> StudySpec:
    return StudySpec(
        space=SearchSpace(
            tuple(
                Parameter(
                    p["name"],
                    _domain_from_dict(p["domain"]),
                    None if p["condition"] is None else Condition(p["condition"]["parent"], tuple(p["condition"]["values"])),
                )
                for p in data["parameters"]
            )
        ),
        objectives=tuple(Objective(o["metric"], Direction(o["direction"]), o.get("reference_point"))
                         for o in data["objectives"]),
        algorithm=AlgorithmSpec(data["algorithm"]["name"], data["algorithm"]["settings"]),
        seed=data["seed"],
        max_trials=data["max_trials"],
        max_parallel_trials=data["max_parallel_trials"],
        lease_seconds=data["lease_seconds"],
        retry_policy=RetryPolicy(data["retry_policy"]["max_retries"], data["retry_policy"]["retry_failed"]),
        # Specs stored before fidelities and pruners existed have neither key.
        fidelity=Fidelity(**data["fidelity"]) if data.get("fidelity") else None,
        pruner=PrunerSpec(**data["pruner"]) if data.get("pruner") else None,
        constraints=tuple(data.get("constraints", ())),
        prior_studies=tuple(data.get("prior_studies", ())),
    )


def canonical(spec: StudySpec) -> str:
    return json.dumps(spec_to_dict(spec), sort_keys=True, separators=(",", ":"))


def specs_match(stored: StudySpec, requested: StudySpec, algorithm_named: bool = True) -> bool:
    """Whether a get-or-create with ``requested`` asks for the ``stored`` study; no seed matches
    any, and neither does no algorithm (``algorithm_named`` False: the request left it out)."""
    if requested.seed is None:
        requested = requested.with_seed(stored.seed)
    if not algorithm_named:
        requested = dataclasses.replace(requested, algorithm=stored.algorithm)
    return canonical(stored) == canonical(requested)
