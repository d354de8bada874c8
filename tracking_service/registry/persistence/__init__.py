"""Reads and writes of the registry's tables (defined, with their migrations, in
:mod:`tracking_service.persistence`: one database, one schema version)."""
