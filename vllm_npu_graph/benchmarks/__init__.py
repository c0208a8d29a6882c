"""`vllm-npu-graph bench`: graph vs eager vs the peer (vLLM's own platform), offline and
under serving load, on one model and machine, with results.json, report.md and plots.

Layout: settings.py (presets and shared engine settings), modes.py (what each mode
changes), offline_worker.py (one engine per mode and repeat, in a subprocess),
online.py (`vllm serve` + `vllm bench serve`), procs.py (subprocesses, peak RSS,
log scans), machine.py (versions and hardware), runner.py (interleaved repeats,
medians), report.py and plots.py (outputs), main.py (command line). Schema of
results.json: bench/README.md.
"""
