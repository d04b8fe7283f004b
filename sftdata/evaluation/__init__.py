"""Did the fine-tune help? `sftdata eval`: a tuned model and its base on held-out records.

evaluate (the command), answers (in-process, llama.cpp server, OpenAI-compatible server), metrics
(chrF, character ROUGE-L, exact match, repetition), judge (pairwise, both orders, synth's limits and
cache), report (HTML). May import trainers, synthesis, curate and below; nothing imports it but api and cli.
"""
