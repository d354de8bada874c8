"""Suggestion service: studies, trials, leases and the ask/tell protocol."""
