"""Plain values and rules of the model registry: no gRPC, no SQL."""
