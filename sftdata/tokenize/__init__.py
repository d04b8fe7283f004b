"""Rendered → Tokenized: loading tokenizers (directory, .gguf, hub id), the light torch-free tokenizer,
the one encoder that makes ids and loss masks, and the token-count bound. May import: the plumbing only."""
