"""The QLoRA trainer and what serves its output (installed as ``sftdata.trainers``).

config (+ presets/*.yaml): TrainConfig, every knob described, presets; models: where the base comes from and
loading it 4-bit without pickle; data: records or pretokenize output → ids and loss masks through pretokenize's
code; checks: pad ≠ EOS, labels, no packing leakage; qlora: TRL's SFTTrainer with peft and bitsandbytes;
outputs, plot: the run directory and its loss curve; infer: generate and merge; plan: peak memory from the
model's config alone; prompt_format: the training template as serving needs it; converter, gguf, basegguf: GGUF
export with llama.cpp's converters and the 16-bit base a LoRA is served on; serve: serve-check.
May import curate, rendering, tokenize, ingest, dequantize and below.
"""
