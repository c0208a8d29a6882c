"""Kernel benchmark and native correctness check on a CUDA GPU (upstream Triton).

For each kernel and shape: the maximum error against its torch reference (checked
before timing), time, achieved memory bandwidth as a fraction of the device's measured
copy bandwidth (or --peak-gbps), and for attention the ratio to
torch.nn.functional.scaled_dot_product_attention on the same shapes (SDPA gets the KV
already gathered into dense tensors, so the ratio favours SDPA).

    .venv/bin/python bench/kernels.py [--peak-gbps 3350]
    TRITON_INTERPRET=1 .venv/bin/python bench/kernels.py --smoke   # tiny shapes on CPU: checks the script
"""

import argparse
import dataclasses
import math
import sys
import time

import torch
import torch.nn.functional as F

DEV = "cuda"


def bench(fn) -> float:
    if DEV == "cpu":
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    import triton.testing

    return triton.testing.do_bench(fn, warmup=25, rep=100)


def measure_copy_gbps() -> float:
    x = torch.empty((512 << 20) if DEV == "cuda" else (1 << 20), dtype=torch.uint8, device=DEV)
    y = torch.empty_like(x)
    ms = bench(lambda: y.copy_(x))
    return 2 * x.numel() / ms / 1e6


def paged_batch(batch, seq_len, query_len, hq, hkv, d, block, dtype):
    g = torch.Generator(device=DEV).manual_seed(0)
    blocks_per_seq = math.ceil(seq_len / block)
    num_blocks = batch * blocks_per_seq + 1
    kv = torch.randn(num_blocks, block, hkv, 2 * d, dtype=dtype, device=DEV, generator=g).transpose(1, 2)
    perm = torch.randperm(num_blocks - 1, device=DEV, generator=g) + 1
    block_table = perm[: batch * blocks_per_seq].view(batch, blocks_per_seq).int()
    q = torch.randn(batch * query_len, hq, d, dtype=dtype, device=DEV, generator=g)
    qsl = torch.arange(batch + 1, device=DEV, dtype=torch.int32) * query_len
    seq_lens = torch.full((batch,), seq_len, device=DEV, dtype=torch.int32)
    return q, kv, qsl, seq_lens, block_table


def sdpa_time(batch, seq_len, query_len, hq, hkv, d, dtype) -> float:
    """SDPA on the same work: queries are the last query_len positions, so a prefill with
    cached context needs the bottom-right causal mask (is_causal=True would align it
    top-left and skip most keys)."""
    q = torch.randn(batch, hq, query_len, d, dtype=dtype, device=DEV)
    k = torch.randn(batch, hkv, seq_len, d, dtype=dtype, device=DEV)
    v = torch.randn_like(k)
    if 1 < query_len < seq_len:
        from torch.nn.attention.bias import causal_lower_right

        k, v = (t.repeat_interleave(hq // hkv, dim=1) for t in (k, v))
        mask = causal_lower_right(query_len, seq_len)
        return bench(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    causal = query_len > 1
    return bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=hq != hkv))


def max_err(got, want) -> float:
    """Largest |got - want| / (1 + |want|): absolute near zero, relative for large values
    (one bf16 rounding step of a value near 4 is 0.03)."""
    return ((got.float() - want.float()).abs() / (1 + want.float().abs())).max().item()


def check(name, err, dtype):
    tol = 2e-2 if dtype == torch.bfloat16 else 5e-3
    status = "ok" if err < tol else "MISMATCH"
    print(f"check {name:<60} max err {err:.2e} (tol {tol:.0e}) {status}", flush=True)
    return err < tol


def main() -> int:
    global DEV
    parser = argparse.ArgumentParser()
    parser.add_argument("--peak-gbps", type=float, default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on CPU under TRITON_INTERPRET=1")
    parser.add_argument("--table", default="", help="launch-table overrides, e.g. prefill_block_m=64,max_kv_splits=16")
    parser.add_argument("--only", choices=("attention", "other"), default=None)
    args = parser.parse_args()
    if args.smoke:
        DEV = "cpu"
    elif not torch.cuda.is_available():
        print("no CUDA GPU: this benchmark needs one (--smoke runs tiny shapes in the CPU interpreter)")
        return 1

    from vllm_npu_graph.kernels import attention_reference as aref
    from vllm_npu_graph.kernels import attention_triton as atri
    from vllm_npu_graph.kernels import fused_reference as fref
    from vllm_npu_graph.kernels import fused_triton as ftri
    from vllm_npu_graph.kernels.launch import GPU_TABLE, INTERPRETER_TABLE

    table = INTERPRETER_TABLE if args.smoke else GPU_TABLE
    overrides = dict(kv.split("=") for kv in args.table.split(",") if kv)
    table = dataclasses.replace(table, **{k: int(v) for k, v in overrides.items()})
    print(f"launch table: {table}")
    peak = args.peak_gbps or measure_copy_gbps()
    name = "CPU (interpreter smoke run)" if args.smoke else torch.cuda.get_device_name(0)
    print(
        f"device: {name}; torch {torch.__version__}; bandwidth reference: {peak:.0f} GB/s "
        f"({'given' if args.peak_gbps else 'measured device-to-device copy'})",
        flush=True,
    )
    rows, ok = [], True
    dtypes = (torch.float32,) if args.smoke else (torch.float16, torch.bfloat16)

    attention_shapes = [  # batch, seq_len, query_len, Hq, Hkv, D, block, window
        (1, 8192, 1, 32, 8, 128, 128, None),
        (16, 2048, 1, 32, 8, 128, 128, None),
        (64, 1024, 1, 32, 8, 128, 64, None),
        (32, 512, 1, 16, 16, 64, 16, None),
        (64, 1024, 1, 9, 3, 64, 16, None),  # SmolLM2's heads
        (4, 1024, 1024, 32, 8, 128, 128, None),
        (1, 4096, 512, 32, 8, 128, 128, None),
        (2, 2048, 256, 32, 8, 128, 128, 512),
    ]
    if args.smoke:
        attention_shapes = [
            (2, 80, 1, 4, 2, 32, 16, None),
            (1, 300, 1, 4, 1, 32, 16, None),
            (2, 40, 24, 4, 2, 32, 16, None),
            (1, 64, 32, 4, 2, 32, 16, 20),
        ]
    for dtype in dtypes if args.only in (None, "attention") else ():
        for batch, seq_len, qlen, hq, hkv, d, block, window in attention_shapes:
            q, kv, qsl, lens, bt = paged_batch(batch, seq_len, qlen, hq, hkv, d, block, dtype)
            scale = d**-0.5

            def ours():
                return atri.paged_attention(q, kv, qsl, lens, bt, scale, window, qlen, table=table, max_seq_len=seq_len)

            kind = "decode" if qlen == 1 else "prefill"
            win = f" win{window}" if window else ""
            shape = f"B{batch} L{seq_len} Q{qlen} H{hq}/{hkv} D{d} blk{block}{win} {str(dtype)[6:]}"
            ok &= check(
                f"{kind} {shape}", max_err(ours(), aref.paged_attention(q, kv, qsl, lens, bt, scale, window)), dtype
            )
            ms = bench(ours)
            moved = 2 * batch * seq_len * hkv * d * kv.element_size() + 2 * q.numel() * q.element_size()
            sdpa = None if window else sdpa_time(batch, seq_len, qlen, hq, hkv, d, dtype)
            rows.append((f"{kind} attention", shape, ms, moved / ms / 1e6 / peak, sdpa and sdpa / ms))

    t, hkv, d, hidden, inter, hq = (64, 2, 32, 96, 80, 4) if args.smoke else (4096, 8, 128, 4096, 11008, 32)
    for dtype in dtypes if args.only in (None, "other") else ():
        tag = str(dtype)[6:]
        key, val = (torch.randn(t, hkv, d, dtype=dtype, device=DEV) for _ in range(2))
        kv = torch.zeros(t // 16 + 1, 16, hkv, 2 * d, dtype=dtype, device=DEV).transpose(1, 2)
        kv_ref = kv.clone()
        slots = torch.randperm(t, device=DEV)
        slots[:3] = -1
        atri.write_kv_cache(key, val, kv, slots, table)
        aref.write_kv_cache(key, val, kv_ref, slots)
        ok &= check(f"kv write T{t} H{hkv} D{d} {tag}", max_err(kv, kv_ref), dtype)
        ms = kv_ms = bench(lambda: atri.write_kv_cache(key, val, kv, slots, table))
        rows.append(
            ("kv write", f"T{t} H{hkv} D{d} {tag}", ms, 4 * key.numel() * key.element_size() / ms / 1e6 / peak, None)
        )

        x, r = (torch.randn(t, hidden, dtype=dtype, device=DEV) for _ in range(2))
        w = torch.rand(hidden, dtype=dtype, device=DEV) + 0.5
        ok &= check(
            f"rms_norm T{t} H{hidden} {tag}",
            max_err(ftri.rms_norm(x, w, 1e-6, table=table), fref.rms_norm(x, w, 1e-6)),
            dtype,
        )
        ms = bench(lambda: ftri.rms_norm(x, w, 1e-6, table=table))
        rows.append(("rms_norm", f"T{t} H{hidden} {tag}", ms, 2 * x.numel() * x.element_size() / ms / 1e6 / peak, None))
        (y, s), (y_ref, s_ref) = ftri.add_rms_norm(x, r, w, 1e-6, table=table), fref.add_rms_norm(x, r, w, 1e-6)
        ok &= check(f"add_rms_norm T{t} H{hidden} {tag}", max(max_err(y, y_ref), max_err(s, s_ref)), dtype)
        ms = bench(lambda: ftri.add_rms_norm(x, r, w, 1e-6, table=table))
        rows.append(
            ("add+rms_norm", f"T{t} H{hidden} {tag}", ms, 4 * x.numel() * x.element_size() / ms / 1e6 / peak, None)
        )

        gu = torch.randn(t, 2 * inter, dtype=dtype, device=DEV)
        ok &= check(f"swiglu T{t} I{inter} {tag}", max_err(ftri.swiglu(gu, table=table), fref.swiglu(gu)), dtype)
        ms = bench(lambda: ftri.swiglu(gu, table=table))
        rows.append(
            ("swiglu", f"T{t} I{inter} {tag}", ms, 1.5 * gu.numel() * gu.element_size() / ms / 1e6 / peak, None)
        )

        qkv = torch.randn(t, (hq + 2 * hkv) * d, dtype=dtype, device=DEV)
        pos = torch.randint(0, 4096, (t,), device=DEV)
        inv = 1.0 / (10000 ** (torch.arange(0, d, 2, device=DEV).float() / d))
        ang = torch.arange(4096, device=DEV).float()[:, None] * inv[None]
        cache = torch.cat([ang.cos(), ang.sin()], dim=-1).to(dtype)
        qn, kn = (torch.rand(d, dtype=dtype, device=DEV) + 0.5 for _ in range(2))
        got = ftri.qkv_rope(qkv, pos, cache, hq, hkv, d, qn, kn, 1e-6, table=table)
        want = fref.qkv_rope(qkv, pos, cache, hq, hkv, d, qn, kn, 1e-6)
        ok &= check(
            f"qkv_rope+qk_norm T{t} H{hq}/{hkv} D{d} {tag}", max(max_err(a, b) for a, b in zip(got, want)), dtype
        )
        ms = bench(lambda: ftri.qkv_rope(qkv, pos, cache, hq, hkv, d, qn, kn, 1e-6, table=table))
        rows.append(
            (
                "qkv_rope+qk_norm",
                f"T{t} H{hq}/{hkv} D{d} {tag}",
                ms,
                2 * qkv.numel() * qkv.element_size() / ms / 1e6 / peak,
                None,
            )
        )
        # ... folded with the KV-cache write (the rope_kv_write pass), against rope then write.
        kv = torch.zeros(t // 16 + 1, 16, hkv, 2 * d, dtype=dtype, device=DEV).transpose(1, 2)
        kv_ref = kv.clone()
        got = ftri.qkv_rope(qkv, pos, cache, hq, hkv, d, qn, kn, 1e-6, kv, slots, table=table)
        want = fref.qkv_rope(qkv, pos, cache, hq, hkv, d, qn, kn, 1e-6, kv_ref, slots)
        ok &= check(
            f"qkv_rope+kv_write T{t} H{hq}/{hkv} D{d} {tag}",
            max(max_err(kv, kv_ref), *(max_err(a, b) for a, b in zip(got, want))),
            dtype,
        )
        fold = bench(lambda: ftri.qkv_rope(qkv, pos, cache, hq, hkv, d, qn, kn, 1e-6, kv, slots, table=table))
        rows.append(
            (
                "qkv_rope+kv_write",
                f"T{t} H{hq}/{hkv} D{d} {tag} (unfused {ms + kv_ms:.4f})",
                fold,
                (2 * qkv.numel() + 2 * key.numel()) * qkv.element_size() / fold / 1e6 / peak,
                None,
            )
        )

    print(f"\n{'kernel':<18} {'shape':<48} {'time ms':>9} {'BW/peak':>8} {'SDPA/ours':>10}")
    for kname, shape, ms, frac, ratio in rows:
        print(f"{kname:<18} {shape:<48} {ms:>9.4f} {frac:>8.2f} {('%.2f' % ratio) if ratio else '-':>10}")
    print("\nall kernels match their references" if ok else "\nSOME KERNELS MISMATCH (see 'check' lines)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
