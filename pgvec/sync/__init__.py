"""Sync: the table is the truth. Triggers log changed keys to ``pgvec.changes``; this
package applies them to the engine (idempotently: re-read the row, upsert or delete) and
removes log rows only once the index state that includes them is durably on disk."""
