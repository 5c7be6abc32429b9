"""Text-to-SQL data: sources, validation, the shared prompt format and synthetic rows."""
