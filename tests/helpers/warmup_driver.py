"""Starts one engine for test_warmup.py with the arguments its warm-up used and prints
the greedy tokens of two prompts as JSON on the last stdout line."""

import sys

from helpers.engines import finish_driver, greedy_ids, make_llm

if __name__ == "__main__":
    model = sys.argv[1]
    llm = make_llm(model, max_model_len=512, max_num_seqs=4, max_num_batched_tokens=512, kv_cache_memory_bytes=64 << 20)
    ids = greedy_ids(llm, [[1, 2, 3, 4, 5], [7, 8, 9]], max_tokens=8)
    finish_driver(llm, ids)
