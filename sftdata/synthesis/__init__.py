"""`sftdata synth`: LLM-backed expansion of prompt seeds (self-instruct, answer, evolve).

Modules by concept: tasks (plans and reply parsing), requests (what a backend is asked and answers),
backends (OpenAI-compatible server; local transformers in local), limits (RPM/TPM, retries), store
(append-only output, request cache, resume), novelty and gates (quality filters), run (the
orchestration). Nothing heavy is imported here: openai, transformers and torch load only when a backend
is made.
May import: curate (MinHash novelty), ingest, rendering, tokenize, the plumbing, schemas, templates.
"""
from __future__ import annotations

from .run import Snapshot, SynthOptions, SynthResult, synth

__all__ = ["Snapshot", "SynthOptions", "SynthResult", "synth"]
