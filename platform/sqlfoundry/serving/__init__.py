"""Planned: see the project's issues (Ray Train / Tune / Serve)."""
