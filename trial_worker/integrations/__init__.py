"""Helpers that connect training libraries to a trial's context (imported on use)."""
