"""Other tools' formats: import presets and exports for TRL, OpenAI, LLaMA-Factory, axolotl and HF
datasets (and the row types and tool-call helpers they share), the dataset card, and the training chat
template for TRL. May import: ingest, rendering, the plumbing, schemas."""
