"""Loggers under `vllm.` so vLLM's lazily configured handler prints them."""

import logging


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"vllm.npu_graph.{name.rsplit('.', 1)[-1]}")
