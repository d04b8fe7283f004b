"""Raw files → Records: readers, encodings, CSV/Parquet, the path language, mappings, validation,
and the loop that reads records JSONL back. May import: errors, items, writers, schemas."""
