"""The web dashboard the gateway serves under ``/ui/``: studies (optimisation history, parallel
coordinates, parameter importance, intermediate values, live updates), experiments, runs and
their comparison, and the model registry with its audit history. See docs/GATEWAY.md."""

from gateway.dashboard.pages import routes

__all__ = ["routes"]
