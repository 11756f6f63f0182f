"""The local SQLite event journal: diagnostics only, never read to decide anything."""

from journal.actor import (
    ActorJournalSink,
    JournalActor,
    JournalActorProxy,
    JournalSink,
    MemoryJournal,
    NullJournal,
    journal_sink,
)
from journal.entry import KINDS, JournalEntry, TaskSummary, now_iso
from journal.report import format_detail, format_events, format_tasks, json_lines
from journal.store import SCHEMA_VERSION, Journal, JournalMissingError, JournalStats

__all__ = [
    "KINDS",
    "SCHEMA_VERSION",
    "ActorJournalSink",
    "Journal",
    "JournalActor",
    "JournalActorProxy",
    "JournalEntry",
    "JournalMissingError",
    "JournalSink",
    "JournalStats",
    "MemoryJournal",
    "NullJournal",
    "TaskSummary",
    "format_detail",
    "format_events",
    "format_tasks",
    "journal_sink",
    "json_lines",
    "now_iso",
]
