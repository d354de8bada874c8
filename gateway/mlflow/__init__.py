"""MLflow's REST API on the gateway: the real ``mlflow`` client works against the tuning suite
(``MLFLOW_TRACKING_URI=http://<gateway>``). See docs/GATEWAY.md, "MLflow compatibility"."""

from gateway.mlflow.routes import guard_refusal_body as refusal_body
from gateway.mlflow.routes import read_only_rule, routes

__all__ = ["read_only_rule", "refusal_body", "routes"]
