"""The QLoRA trainer (installed as ``sftdata.trainers``); built in a later issue."""
