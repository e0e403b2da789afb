#!/usr/bin/env python3
"""Makes the block fixtures of tests/it/quantize.rs from llama.cpp's own quantizer.

Usage: make_fixtures.py LLAMA_QUANTIZE SMOLLM2_Q4_1_GGUF WORK_DIR

The SmolLM2 Q4_1 file is widened to F32 by llama-quantize; rows 0..16 of blk.3.ffn_down (1536
columns: K-quant blocks) and blk.3.attn_q (576 columns: 32-value blocks) are replaced by edge
cases (zeros, constants, single spikes, tiny and subnormal values, ramps, outliers); the file is
quantized by llama-quantize to each type; and for each block type the script writes
<type>.bin: records of the block's f32 input values (little-endian) followed by the bytes
llama-quantize wrote for them. Records: the first block of each edge row, the last block of row 4
(its spike is the row's last value), and three blocks of real weights.
Needs python3 with numpy and gguf. llama-quantize: build b4748.
"""

import pathlib
import shutil
import subprocess
import sys

import gguf
import numpy as np

# block type -> (values per block, bytes per block, mixture, tensor)
TYPES = {
    "q4_0": (32, 18, "Q4_0", "blk.3.attn_q.weight"),
    "q4_1": (32, 20, "Q4_1", "blk.3.attn_q.weight"),
    "q5_0": (32, 22, "Q4_K_M", "blk.3.attn_q.weight"),
    "q5_1": (32, 24, "Q5_K_M", "blk.3.attn_q.weight"),
    "q8_0": (32, 34, "Q8_0", "blk.3.attn_q.weight"),
    "q4_k": (256, 144, "Q4_K_M", "blk.3.ffn_down.weight"),
    "q5_k": (256, 176, "Q5_K_M", "blk.3.ffn_down.weight"),
    "q6_k": (256, 210, "Q6_K", "blk.3.ffn_down.weight"),
}
EDGE_ROWS = 16


def edge_rows(n, rng):
    spike_first, spike_last = np.zeros(n), np.zeros(n)
    spike_first[5], spike_last[n - 1] = 3.0, -7.5
    alternating = np.ones(n)
    alternating[::2] = -1
    outliers = rng.normal(size=n)
    outliers[rng.integers(0, n, 4)] *= 40
    rows = [
        np.zeros(n),
        np.full(n, 0.5),
        np.full(n, -0.25),
        spike_first,
        spike_last,
        rng.normal(size=n) * 1e-20,
        rng.normal(size=n) * 1e-38,
        rng.normal(size=n) * 1e3,
        np.linspace(-1, 1, n),
        np.linspace(0.1, 2, n),
        np.linspace(-3, -0.5, n),
        alternating * 0.3,
        outliers,
        rng.standard_cauchy(size=n).clip(-1e4, 1e4),
        np.abs(rng.normal(size=n)),
        rng.uniform(-1, 1, size=n) * (np.arange(n) % 32 == 0),
    ]
    assert len(rows) == EDGE_ROWS
    return [row.astype(np.float32) for row in rows]


def tensor(path, name):
    return next(t for t in gguf.GGUFReader(path).tensors if t.name == name)


def main(quantize, model, work):
    work = pathlib.Path(work)
    work.mkdir(parents=True, exist_ok=True)
    f32 = work / "edge-f32.gguf"
    subprocess.run([quantize, "--allow-requantize", model, f32, "F32"], check=True, capture_output=True)
    reader = gguf.GGUFReader(f32, mode="r+")
    rng = np.random.default_rng(7)
    for name in ("blk.3.ffn_down.weight", "blk.3.attn_q.weight"):
        data = next(t for t in reader.tensors if t.name == name).data
        for i, row in enumerate(edge_rows(data.shape[1], rng)):
            data[i, :] = row
    reader.data.flush()
    outputs = {}
    for mixture in sorted({t[2] for t in TYPES.values()}):
        outputs[mixture] = work / f"edge-{mixture}.gguf"
        subprocess.run([quantize, f32, outputs[mixture], mixture], check=True, capture_output=True)
    here = pathlib.Path(__file__).parent
    for kind, (elems, size, mixture, name) in TYPES.items():
        values = np.asarray(tensor(f32, name).data, dtype=np.float32)
        quantized = np.asarray(tensor(outputs[mixture], name).data).view(np.uint8)
        per_row = values.shape[1] // elems
        picks = [(r, 0) for r in range(EDGE_ROWS)] + [(4, per_row - 1), (100, 1), (200, per_row // 2), (300, per_row - 1)]
        with open(here / f"{kind}.bin", "wb") as out:
            for row, block in picks:
                out.write(values[row, block * elems:(block + 1) * elems].tobytes())
                out.write(quantized[row].reshape(-1)[block * size:(block + 1) * size].tobytes())
        print(kind, len(picks), "blocks")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
