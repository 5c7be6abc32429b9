"""The text-to-SQL HTTP endpoint: a Ray-free engine (engine.py, adapters.py) behind Ray Serve (app.py)."""
