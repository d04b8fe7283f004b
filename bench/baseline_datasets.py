"""The seed-style pipeline sftdata's convert is benchmarked against (see bench/README.md).

load_dataset("json") → map(formatting_func, batched=True) → to_json, formatting the same Alpaca
prompt as templates/alpaca.jinja and appending the EOS once, as a typical SFT notebook does.
Usage: python bench/baseline_datasets.py IN.jsonl OUT.jsonl EOS   (set HF_DATASETS_CACHE to a fresh dir)
"""
from __future__ import annotations

import sys

from datasets import load_dataset

PROMPT_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further "
                "context. Write a response that appropriately completes the request.\n\n"
                "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
PROMPT_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately "
                   "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")


def main(source: str, target: str, eos: str) -> None:
    def formatting_func(batch: dict[str, list]) -> dict[str, list[str]]:
        texts = []
        for instruction, input_, output in zip(batch["instruction"], batch["input"], batch["output"]):
            prompt = (PROMPT_INPUT if input_ else PROMPT_NO_INPUT).format(instruction=instruction, input=input_)
            texts.append(prompt + output + eos)
        return {"text": texts}

    dataset = load_dataset("json", data_files=source, split="train")
    dataset = dataset.map(formatting_func, batched=True, remove_columns=dataset.column_names)
    dataset.to_json(target, force_ascii=False)


if __name__ == "__main__":
    main(*sys.argv[1:4])
