"""Raw files → Records: readers, the sources and raw lines they share, encodings, CSV/Parquet, the path
language, mappings, validation, and the loop that reads records JSONL back.
May import: errors, items, writers, schemas."""
