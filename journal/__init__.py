"""The local SQLite event journal: diagnostics only, never read to decide anything."""
