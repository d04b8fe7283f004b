"""What reaches the trainer: stats, inspect, audit, dedup, filter, split, pretokenize over records.
May import: ingest, rendering, tokenize, the plumbing, schemas, templates."""
