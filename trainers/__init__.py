"""The QLoRA trainer and what serves its output (installed as ``sftdata.trainers``).

config (+ presets/*.yaml): TrainConfig, every knob described, presets; models: where the base comes from and
loading it 4-bit without pickle; data: records or pretokenize output → ids and loss masks through pretokenize's
code; checks: pad ≠ EOS, labels, no packing leakage; qlora: TRL's SFTTrainer with peft and bitsandbytes;
outputs, plot: the run directory and its loss curve; infer: generate and merge; plan: peak memory from the
model's config alone; prompt_format: the training template as serving needs it; converter, gguf: GGUF export with
llama.cpp's converters; roundtrip, basegguf: the base an adapter trained against (the 4-bit round trip, in 16 bits)
and its cached GGUF; parity: the server's chat template path against training's text; llamaservers: llama-cpp-python's server and
llama.cpp's llama-server on loopback; serve: serve-check.
May import curate, rendering, tokenize, ingest, dequantize and below.
"""
