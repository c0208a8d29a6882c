"""Shared test code: engine helpers, driver scripts run in subprocesses, case lists."""
