"""Tests of the journal: the SQLite store, the actor and sinks, and the CLI report."""
