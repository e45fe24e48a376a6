"""The bare baseline: llama.cpp's low-level C API in a minimal loop, nothing else.

Prefill with ``llama_decode`` on n_batch-sized batches, then ``llama_decode`` on one-token batches
with llama.cpp's own greedy sampler chain (EOG banned, so the length is exact, as energybench does).
No logits are copied to Python: this is what llama.cpp's native tools reach. Prints one JSON line
per repetition: prefill and decode tokens/s computed exactly as energybench computes them.

    python benchmarks/baseline_loop.py MODEL.gguf --threads 2 --n-prompt 128 --n-gen 64 --reps 5
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time

import llama_cpp as ll


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-prompt", type=int, default=128)
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--serve", action="store_true",
                    help="after the warm-ups, run one repetition per line read on stdin (for run-by-run pairing)")
    args = ap.parse_args()

    ll.llama_backend_init()
    model = ll.llama_model_load_from_file(args.model.encode(), ll.llama_model_default_params())
    if not model:
        print("cannot load model", file=sys.stderr)
        return 1
    vocab = ll.llama_model_get_vocab(model)
    cp = ll.llama_context_default_params()
    cp.n_ctx = max(256, -(-(args.n_prompt + args.n_gen) // 256) * 256)
    cp.n_batch = cp.n_ubatch = args.batch
    cp.n_threads = cp.n_threads_batch = args.threads
    cp.no_perf = False
    ctx = ll.llama_init_from_model(model, cp)
    n_vocab = ll.llama_vocab_n_tokens(vocab)
    eog = [t for t in range(n_vocab) if ll.llama_vocab_is_eog(vocab, t)]
    chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
    if eog:
        biases = (ll.llama_logit_bias * len(eog))()
        for i, t in enumerate(eog):
            biases[i].token, biases[i].bias = t, float("-inf")
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_logit_bias(n_vocab, len(eog), biases))
    ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
    # a fixed prompt of ordinary token ids (BOS + ids 100..): the content does not change the cost
    prompt = [ll.llama_vocab_bos(vocab)] + [100 + (i % 1000) for i in range(args.n_prompt - 1)]
    arr = (ll.llama_token * len(prompt))(*prompt)
    one = (ll.llama_token * 1)()
    tok_size = ctypes.sizeof(ll.llama_token)
    token_p = ctypes.POINTER(ll.llama_token)
    base = ctypes.addressof(arr)
    def one_rep() -> dict[str, float]:
        ll.llama_memory_clear(ll.llama_get_memory(ctx), True)
        ll.llama_sampler_reset(chain)
        t0 = time.monotonic_ns()
        for i in range(0, len(prompt), args.batch):
            n = min(args.batch, len(prompt) - i)
            ll.llama_decode(ctx, ll.llama_batch_get_one(ctypes.cast(base + i * tok_size, token_p), n))
        tok = ll.llama_sampler_sample(chain, ctx, -1)
        t1 = time.monotonic_ns()
        for _ in range(args.n_gen - 1):
            one[0] = tok
            ll.llama_decode(ctx, ll.llama_batch_get_one(one, 1))
            tok = ll.llama_sampler_sample(chain, ctx, -1)
        t2 = time.monotonic_ns()
        return {"prefill_tok_s": len(prompt) / ((t1 - t0) / 1e9), "decode_tok_s": (args.n_gen - 1) / ((t2 - t1) / 1e9)}

    for _ in range(args.warmup):
        one_rep()
    if args.serve:
        print(json.dumps({"ready": True}), flush=True)
        for _line in sys.stdin:
            print(json.dumps(one_rep()), flush=True)
    else:
        for _ in range(args.reps):
            print(json.dumps(one_rep()), flush=True)
    ll.llama_sampler_free(chain)
    ll.llama_free(ctx)
    ll.llama_model_free(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
