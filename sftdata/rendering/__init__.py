"""Records → Rendered: the sandboxed templates, the render plan behind --template/--eos/--style, and
the columnar path compiled from the same templates. May import: ingest, tokenize (loading), the plumbing, schemas, templates."""
