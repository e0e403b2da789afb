"""Dot products computed by ggml itself (llama.cpp's libggml-cpu, through ctypes), for the
kernel tests: random weight rows quantized by ggml to each block type, random activation rows
quantized by ggml to the type's vec_dot_type, and ggml's vec_dot of the two.

Usage: python3 make_ggml_dots.py LLAMA_CPP_BIN_DIR OUT.json
(LLAMA_CPP_BIN_DIR holds libggml-base.so and libggml-cpu.so.)"""

import ctypes
import json
import sys

import numpy as np

lib_dir, out_path = sys.argv[1], sys.argv[2]
ctypes.CDLL(f"{lib_dir}/libggml-base.so", mode=ctypes.RTLD_GLOBAL)
cpu = ctypes.CDLL(f"{lib_dir}/libggml-cpu.so")
cpu.ggml_cpu_init()  # fills the f16 tables the dot products read

# type: (weight block bytes, values per block, activation type, activation block bytes)
TYPES = {
    "q4_0": (18, 32, "q8_0", 34),
    "q4_1": (20, 32, "q8_1", 36),
    "q5_0": (22, 32, "q8_0", 34),
    "q5_1": (24, 32, "q8_1", 36),
    "q8_0": (34, 32, "q8_0", 34),
    "q4_K": (144, 256, "q8_K", 292),
    "q5_K": (176, 256, "q8_K", 292),
    "q6_K": (210, 256, "q8_K", 292),
}


def quantize(name, x, block_bytes, per):
    out = ctypes.create_string_buffer(len(x) // per * block_bytes)
    f = getattr(cpu, f"quantize_row_{name}")
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    f(x.ctypes.data, out, len(x))
    return out.raw


def vec_dot(name, act, n, w, y):
    f = getattr(cpu, f"ggml_vec_dot_{name}_{act}")
    f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p,
                  ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    s = np.zeros(1, dtype=np.float32)
    f(n, s.ctypes.data, 0, w, 0, y, 0, 1)
    return s[0]


rng = np.random.default_rng(2026)
cases = []
for name, (wb, per, act, ab) in TYPES.items():
    n = 4 * 256
    for case in range(6):
        # Weights and activations of the sizes a model has, a few outliers among them.
        w = (rng.standard_normal(n) * 0.05).astype(np.float32)
        x = (rng.standard_normal(n) * (0.5 + case)).astype(np.float32)
        x[rng.integers(0, n, 3)] *= 30
        wq = quantize(name, w, wb, per)
        y = quantize(act, x, ab, 256 if act == "q8_K" else 32)
        d = vec_dot(name, act, n, wq, y)
        cases.append({
            "type": name,
            "weights": wq.hex(),
            "x": x.tobytes().hex(),
            "dot_bits": int(np.float32(d).view(np.uint32)),
        })
json.dump({"generator": "make_ggml_dots.py with llama.cpp b4748 (c392e5094) libggml-cpu, AVX-512 VNNI build",
           "cases": cases}, open(out_path, "w"))
print(len(cases), "cases")
