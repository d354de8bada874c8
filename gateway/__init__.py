"""Gateway: HTTP/JSON for every RPC, the MLflow-compatible REST surface and the dashboard."""
