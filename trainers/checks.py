"""The checks that keep what sftdata verified true inside the trainer.

- `choose_pad`: a pad token distinct from the EOS (pad = EOS is how reference notebooks end up with
  a model that never learns to stop, once anything masks labels by pad id).
- `check_no_leakage`: packing and padding-free put several samples in one row; a forward pass on
  two samples packed together must give the second the same logits as alone, or they would attend
  to each other. Refused (TrainError) when the attention kernel does not keep them apart.
- `verify_labels`: on real collated batches, the loss is taken exactly on the masked-in tokens,
  every trained span's EOS is among them, and no pad is.
"""
from __future__ import annotations

from typing import Any

from ..errors import TrainError, option

# Tokens that exist only to pad, in the order they are preferred; the tokenizer's unk comes after.
_PAD_NAMES = ("<|finetune_right_pad_id|>", "<pad>", "<|pad|>", "[PAD]", "<|padding|>", "<|endoftext|>")


def choose_pad(tokenizer: Any, eos: str) -> tuple[str, bool]:
    """Set tokenizer.pad_token to a token other than the EOS and return (pad, distinct?).

    When the vocabulary has nothing that could serve, pad stays the EOS: padding is then masked by
    the attention mask and labels (-100) alone, which `verify_labels` checks."""
    eos_ids = {tokenizer.convert_tokens_to_ids(eos), tokenizer.eos_token_id}
    vocab = tokenizer.get_vocab()
    candidates = [tokenizer.pad_token, *_PAD_NAMES, tokenizer.unk_token]
    for name in candidates:
        if name and name in vocab and vocab[name] not in eos_ids and name != tokenizer.bos_token:
            tokenizer.pad_token = name
            return name, True
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer.eos_token, False


def check_no_leakage(model: Any, tokenizer: Any, what: str) -> None:
    """Two samples packed the way TRL's padding-free collator packs them must not see each other."""
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    first = tokenizer("The quick brown fox jumps over the lazy dog.", add_special_tokens=False)["input_ids"]
    second = tokenizer("Paris is the capital of France, and", add_special_tokens=False)["input_ids"]
    collate = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)
    packed = collate([{"input_ids": first}, {"input_ids": second}])
    packed.pop("labels")
    device = next(model.parameters()).device
    was_training = model.training
    # train mode (under no_grad): in eval mode bitsandbytes repacks CPU 4-bit weights for inference
    model.train()
    try:
        with torch.no_grad():
            # use_cache=False as in training: with a cache, transformers does not look for packed sequences
            inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in packed.items()}
            together = model(**inputs, use_cache=False).logits
            alone = model(input_ids=torch.tensor([second], device=device), use_cache=False).logits
    finally:
        model.train(was_training)
    together = together[0, len(first):].float()
    alone = alone[0].float()
    gap = (together - alone).abs().max().item()
    scale = alone.abs().max().item() or 1.0
    if gap > 0.02 * scale:
        kernel = getattr(model.config, "_attn_implementation", "?")
        raise TrainError(
            f"{what} would let samples attend to each other with attn_implementation={kernel} on this model "
            f"(logits of a packed sample moved by {gap:.3g})",
            hint=f"drop {option('packing')}/{option('padding_free')}, or install flash-attention on a GPU and pass "
                 f"{option('attn', 'flash_attention_2')}")


def verify_labels(trainer: Any, masks: list[list[int]], eos_ids: set[int], packed: bool, rows: int = 8) -> None:
    """Collate the first rows of the prepared dataset and check labels against our masks."""
    dataset = trainer.train_dataset
    n = min(rows, len(dataset))
    examples = [dataset[i] for i in range(n)]
    batch = trainer.data_collator(examples)
    labels = batch["labels"]
    if not packed:
        for i, example in enumerate(examples):
            expected = [t if m else -100 for t, m in zip(example["input_ids"], masks[i])]
            if list(example["labels"]) != expected:
                raise TrainError(f"internal check failed: labels of sample {i} do not follow its loss mask")
    if "attention_mask" in batch:
        pads = batch["attention_mask"] == 0
        if (labels[pads] != -100).any():
            raise TrainError("internal check failed: padding tokens carry a loss")
    trained_eos = sum(int((labels == e).sum()) for e in eos_ids)
    spans = sum(_spans(m) for m in masks[:n]) if not packed else 1
    if trained_eos < spans:
        raise TrainError(f"internal check failed: {spans} trained spans but only {trained_eos} EOS tokens carry "
                         "a loss; the model would not learn to stop")


def _spans(mask: list[int]) -> int:
    return sum(1 for i, m in enumerate(mask) if m and (i == 0 or not mask[i - 1]))
