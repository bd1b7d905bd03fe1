"""Scheduled work: the job table, the runner and one module per job family."""
