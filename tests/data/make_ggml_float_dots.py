"""Float matrix products computed by ggml itself (llama.cpp's libggml-cpu, through ctypes), for
the float kernel tests: random F16, BF16 and F32 weight rows, random activation rows converted
by ggml's from_float to the weight type, and the product as ggml's mul_mat computes it:
llamafile_sgemm (tinyBLAS) when it accepts the shapes (two or more activation rows, rows a
multiple of 4, a width it divides), otherwise vec_dot per output.

Usage: python3 make_ggml_float_dots.py LLAMA_CPP_BIN_DIR OUT.json
(LLAMA_CPP_BIN_DIR holds libggml-base.so and libggml-cpu.so.)"""

import ctypes
import json
import sys

import numpy as np

lib_dir, out_path = sys.argv[1], sys.argv[2]
base = ctypes.CDLL(f"{lib_dir}/libggml-base.so", mode=ctypes.RTLD_GLOBAL)
cpu = ctypes.CDLL(f"{lib_dir}/libggml-cpu.so")
cpu.ggml_cpu_init()

VecDot = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                          ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
FromFloat = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


class Traits(ctypes.Structure):  # struct ggml_type_traits_cpu
    _fields_ = [("from_float", FromFloat), ("vec_dot", VecDot), ("vec_dot_type", ctypes.c_int),
                ("nrows", ctypes.c_int64)]


class ThreadpoolParams(ctypes.Structure):  # struct ggml_threadpool_params
    _fields_ = [("cpumask", ctypes.c_bool * 512), ("n_threads", ctypes.c_int), ("prio", ctypes.c_int),
                ("poll", ctypes.c_uint32), ("strict_cpu", ctypes.c_bool), ("paused", ctypes.c_bool)]


class ComputeParams(ctypes.Structure):  # struct ggml_compute_params
    _fields_ = [("ith", ctypes.c_int), ("nth", ctypes.c_int), ("wsize", ctypes.c_size_t),
                ("wdata", ctypes.c_void_p), ("threadpool", ctypes.c_void_p)]


cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(Traits)
base.ggml_threadpool_params_default.restype = ThreadpoolParams
base.ggml_threadpool_params_default.argtypes = [ctypes.c_int]
cpu.ggml_threadpool_new.restype = ctypes.c_void_p
cpu.ggml_threadpool_new.argtypes = [ctypes.POINTER(ThreadpoolParams)]
cpu.llamafile_sgemm.restype = ctypes.c_bool
cpu.llamafile_sgemm.argtypes = [ctypes.POINTER(ComputeParams)] + [ctypes.c_int64] * 3 + [
    ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
    ctypes.c_int64, ctypes.c_int, ctypes.c_int, ctypes.c_int]
# One thread: tinyBLAS's barriers and chunk counter need a threadpool, even of one.
tpp = base.ggml_threadpool_params_default(1)
params = ComputeParams(0, 1, 0, None, cpu.ggml_threadpool_new(ctypes.byref(tpp)))

TYPES = {"f32": (0, np.float32), "f16": (1, np.uint16), "bf16": (30, np.uint16)}


def to_type(name, x):
    """x as ggml's from_float writes it for the type (F32 stays as it is)."""
    code, dtype = TYPES[name]
    if name == "f32":
        return x.copy()
    out = np.zeros(x.size, dtype)
    cpu.ggml_get_type_traits_cpu(code).contents.from_float(x.ctypes.data, out.ctypes.data, x.size)
    return out.reshape(x.shape)


def mul_mat(name, w, y, rows, cols, m):
    code, _ = TYPES[name]
    out = np.zeros((m, rows), np.float32)
    if cpu.llamafile_sgemm(ctypes.byref(params), rows, m, cols, w.ctypes.data, cols, y.ctypes.data,
                           cols, out.ctypes.data, rows, code, code, 0):
        return out, "sgemm"
    vec_dot = cpu.ggml_get_type_traits_cpu(code).contents.vec_dot
    for j in range(m):
        for i in range(rows):
            s = np.zeros(1, np.float32)
            vec_dot(cols, s.ctypes.data, 0, w[i].ctypes.data, 0, y[j].ctypes.data, 0, 1)
            out[j, i] = s[0]
    return out, "vec_dot"


rng = np.random.default_rng(2027)
cases = []
for name in TYPES:
    # Widths: whole 64-column rounds, a BF16 chunk past them, a leftover of 24 columns.
    for cols in (576, 608, 600):
        for m in (1, 3):
            rows = 4
            w32 = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
            x = (rng.standard_normal((m, cols)) * 2).astype(np.float32)
            x[:, rng.integers(0, cols, 3)] *= 30
            w = to_type(name, w32)
            out, path = mul_mat(name, w, to_type(name, x), rows, cols, m)
            cases.append({"type": name, "rows": rows, "cols": cols, "m": m, "path": path,
                          "weights": w.tobytes().hex(), "x": x.tobytes().hex(),
                          "out_bits": [int(v) for v in out.view(np.uint32).ravel()]})
            print(name, cols, m, path)
json.dump({"generator": "make_ggml_float_dots.py with llama.cpp b4748 (c392e5094) libggml-cpu, "
           "AVX-512 build with AVX512-BF16", "cases": cases}, open(out_path, "w"))
print(len(cases), "cases")
