"""`sftdata review`: a local web app over an output chain: every row as the trainer sees it, every decision with its
evidence, and a person's overrulings saved in an append-only review file (`review-apply` writes the result).

May import curate, tokenize, rendering, ingest, the plumbing and schemas; only api (and through it cli) imports it.
The web server (Starlette, uvicorn) is imported only where the server starts (sftdata.reviewing.server).
"""
