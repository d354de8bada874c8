"""The vocabulary that clients and services share: parameter values and search spaces
(:mod:`~tuning_types.space`), study specs and fidelity (:mod:`~tuning_types.study`), their proto
form (:mod:`~tuning_types.convert`) and the tracking service's filter language
(:mod:`~tuning_types.search`).

It sits below both the services and the client (``trial_worker``), so neither imports the
other: a worker needs these types and the generated protos, never a service's code.
"""
