"""What reaches the trainer: stats (and the lengths pass it shares with audit), inspect, audit, dedup, filter,
split, pretokenize over records. May import: ingest, rendering, tokenize, the plumbing, schemas, templates."""
