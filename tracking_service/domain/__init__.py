"""Plain values and rules of the tracking service: no gRPC, no SQL."""
