"""The gRPC face of the tracking service: a thin servicer and the proto <-> domain conversion."""
