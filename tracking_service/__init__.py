"""Tracking service: experiments, runs, metrics, artifacts and the model registry."""
