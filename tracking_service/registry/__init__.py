"""The model registry: registered models, their versions, stages, aliases and audit log, served
by the tracking service's process over the same database (tables in tracking_service.persistence).
"""
