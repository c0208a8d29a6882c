"""Kernel benchmark and native correctness check on a CUDA GPU (upstream Triton).

For each kernel and shape: time, achieved memory bandwidth as a fraction of the
device's measured copy bandwidth (or --peak-gbps), and the ratio to
torch.nn.functional.scaled_dot_product_attention on the same data (attention kernels;
SDPA gets the KV already gathered into dense tensors, so the ratio favours SDPA).
Before timing, every kernel is checked against its torch reference on the GPU.

    .venv/bin/python bench/kernels.py [--peak-gbps 3350]
"""

import argparse
import math
import sys

import torch
import torch.nn.functional as F


def measure_copy_gbps() -> float:
    x = torch.empty(512 << 20, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    ms = bench(lambda: y.copy_(x))
    return 2 * x.numel() / ms / 1e6


def bench(fn) -> float:
    import triton.testing

    return triton.testing.do_bench(fn, warmup=25, rep=100)


def paged_batch(batch, seq_len, query_len, hq, hkv, d, block, dtype):
    g = torch.Generator(device="cuda").manual_seed(0)
    blocks_per_seq = math.ceil(seq_len / block)
    num_blocks = batch * blocks_per_seq + 1
    kv = torch.randn(num_blocks, block, hkv, 2 * d, dtype=dtype, device="cuda", generator=g).transpose(1, 2)
    perm = torch.randperm(num_blocks - 1, device="cuda", generator=g) + 1
    block_table = perm[: batch * blocks_per_seq].view(batch, blocks_per_seq).int()
    q = torch.randn(batch * query_len, hq, d, dtype=dtype, device="cuda", generator=g)
    qsl = torch.arange(batch + 1, device="cuda", dtype=torch.int32) * query_len
    seq_lens = torch.full((batch,), seq_len, device="cuda", dtype=torch.int32)
    return q, kv, qsl, seq_lens, block_table


def sdpa_time(batch, seq_len, query_len, hq, hkv, d, dtype) -> float:
    q = torch.randn(batch, hq, query_len, d, dtype=dtype, device="cuda")
    k = torch.randn(batch, hkv, seq_len, d, dtype=dtype, device="cuda")
    v = torch.randn_like(k)
    causal = query_len > 1
    return bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=hq != hkv))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peak-gbps", type=float, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU: this benchmark needs one (the kernels' CPU tests run under TRITON_INTERPRET=1)")
        return 1

    from vllm_npu_graph.kernels import attention_reference as aref
    from vllm_npu_graph.kernels import attention_triton as atri
    from vllm_npu_graph.kernels import fused_reference as fref
    from vllm_npu_graph.kernels import fused_triton as ftri
    from vllm_npu_graph.kernels.launch import GPU_TABLE

    table = GPU_TABLE
    peak = args.peak_gbps or measure_copy_gbps()
    print(f"device: {torch.cuda.get_device_name(0)}; bandwidth reference: {peak:.0f} GB/s "
          f"({'given' if args.peak_gbps else 'measured device-to-device copy'})")
    rows = []

    # Attention: decode (split-KV kicks in at small batch, long context) and prefill.
    for dtype in (torch.float16, torch.bfloat16):
        for batch, seq_len, qlen, hq, hkv, d, block in [
            (1, 8192, 1, 32, 8, 128, 128), (16, 2048, 1, 32, 8, 128, 128), (64, 1024, 1, 32, 8, 128, 64),
            (32, 512, 1, 16, 16, 64, 16), (4, 1024, 1024, 32, 8, 128, 128), (1, 4096, 512, 32, 8, 128, 128),
        ]:
            q, kv, qsl, lens, bt = paged_batch(batch, seq_len, qlen, hq, hkv, d, block, dtype)
            scale = d ** -0.5
            got = atri.paged_attention(q, kv, qsl, lens, bt, scale, None, qlen, table=table, max_seq_len=seq_len)
            want = aref.paged_attention(q, kv, qsl, lens, bt, scale)
            err = (got.float() - want.float()).abs().max().item()
            assert err < (2e-2 if dtype == torch.bfloat16 else 5e-3), f"attention mismatch {err}"
            ms = bench(lambda: atri.paged_attention(q, kv, qsl, lens, bt, scale, None, qlen, table=table,
                                                    max_seq_len=seq_len))
            moved = 2 * batch * seq_len * hkv * d * kv.element_size() + 2 * q.numel() * q.element_size()
            sdpa = sdpa_time(batch, seq_len, qlen, hq, hkv, d, dtype)
            kind = "decode" if qlen == 1 else "prefill"
            rows.append((f"{kind} attention", f"B{batch} L{seq_len} Q{qlen} H{hq}/{hkv} D{d} blk{block} {str(dtype)[6:]}",
                         ms, moved / ms / 1e6 / peak, sdpa / ms))

    # KV write and the fused ops.
    for dtype in (torch.float16, torch.bfloat16):
        t, hkv, d = 4096, 8, 128
        key, val = (torch.randn(t, hkv, d, dtype=dtype, device="cuda") for _ in range(2))
        kv = torch.zeros(t // 16 + 1, 16, hkv, 2 * d, dtype=dtype, device="cuda").transpose(1, 2)
        slots = torch.randperm(t, device="cuda")
        ms = bench(lambda: atri.write_kv_cache(key, val, kv, slots, table))
        rows.append(("kv write", f"T{t} H{hkv} D{d} {str(dtype)[6:]}", ms, 4 * key.numel() * key.element_size() / ms / 1e6 / peak, None))

        x, r = (torch.randn(t, 4096, dtype=dtype, device="cuda") for _ in range(2))
        w = torch.ones(4096, dtype=dtype, device="cuda")
        y, s = ftri.add_rms_norm(x, r, w, 1e-6, table=table)
        y_ref, _ = fref.add_rms_norm(x, r, w, 1e-6)
        assert (y.float() - y_ref.float()).abs().max().item() < 5e-2
        ms = bench(lambda: ftri.add_rms_norm(x, r, w, 1e-6, table=table))
        rows.append(("add+rms_norm", f"T{t} H4096 {str(dtype)[6:]}", ms, 4 * x.numel() * x.element_size() / ms / 1e6 / peak, None))

        gu = torch.randn(t, 2 * 11008, dtype=dtype, device="cuda")
        assert (ftri.swiglu(gu, table=table).float() - fref.swiglu(gu).float()).abs().max().item() < 5e-2
        ms = bench(lambda: ftri.swiglu(gu, table=table))
        rows.append(("swiglu", f"T{t} I11008 {str(dtype)[6:]}", ms, 1.5 * gu.numel() * gu.element_size() / ms / 1e6 / peak, None))

    print(f"\n{'kernel':<18} {'shape':<44} {'time ms':>9} {'BW/peak':>8} {'SDPA/ours':>10}")
    for name, shape, ms, frac, ratio in rows:
        print(f"{name:<18} {shape:<44} {ms:>9.4f} {frac:>8.2f} {('%.2f' % ratio) if ratio else '-':>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
