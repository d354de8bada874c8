"""The registry's gRPC face: a thin servicer and the proto <-> domain conversion."""
