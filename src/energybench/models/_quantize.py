"""Child process: ``python -m energybench.models._quantize SRC DST FTYPE THREADS``.

Runs llama.cpp's own ``llama_model_quantize`` so the tensor-type mix of each quant (Q4_K_M keeps
some tensors in Q6_K, ...) is exactly llama.cpp's. It lives in its own process because native code
may crash; the parent (:func:`energybench.models.synth.quantize_in_subprocess`) turns a non-zero
exit or a signal into a one-line error. Exit codes: 0 ok, 2 bad arguments, 3 quantize failed.
"""

from __future__ import annotations

import ctypes
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: python -m energybench.models._quantize SRC DST FTYPE THREADS", file=sys.stderr)
        return 2
    src, dst, ftype, threads = argv[0], argv[1], int(argv[2]), int(argv[3])
    import llama_cpp as ll

    ll.llama_backend_init()
    params = ll.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    rc = ll.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        print(f"llama_model_quantize returned {rc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
