"""`iobench infer kvcache`: LLM KV-cache offload to storage, judged against a TTFT budget.

geometry: KV bytes per token and chunk sizes from the model presets; profiles and trace:
what is replayed (context profiles, Mooncake-format traces); store: the two on-disk layouts
(file-per-chunk, slab); tiers: the RAM and storage tiers (LRU, admission, promotion);
engine: the I/O pool, the replay and the TTFT search; report: metrics and tables.
"""
