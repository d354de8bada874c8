"""Code shared by every process of the suite: errors, gRPC server bootstrap, settings, CLI.

Nothing here knows about studies, runs or models.
"""
