"""Other tools' formats: import presets and exports for TRL, OpenAI, LLaMA-Factory, axolotl and HF
datasets, and the dataset card. May import: ingest, the plumbing, schemas."""
