"""Helpers the tests share: real models and servers (llama.cpp, S3), fault proxies, corpora."""
