#!/usr/bin/env python3
"""An independent float64 forward pass of Gemma 3 over a GGUF file, in NumPy, that writes the
reference our Rust forward pass is held to (tests/it/gemma.rs).

It shares no code with the engine: the GGUF is read with the `gguf` package (which dequantizes
the K-quants), the text is tokenized by Google's SentencePiece library (BPE, byte fallback, no
dummy prefix, as Gemma's tokenizer.model) built from the GGUF's own vocabulary, and the layers
follow Hugging Face's published Gemma 3 text model (modeling_gemma3.py):

  x = embed(ids) * sqrt(hidden)
  per layer: h = norm(x); q, k, v = h Wq, h Wk, h Wv; q, k = norm each head (q_norm, k_norm);
             RoPE on the two halves of each head, base 10,000 on local layers and the file's
             base (1,000,000) on global ones (with linear scaling on global layers if any);
             attention scaled by query_pre_attn_scalar^-1/2, causal, and on local layers only
             the last `sliding_window` positions (every sixth layer is global);
             x += post_attention_norm(attn Wo)
             x += post_ffw_norm(down(gelu_tanh(h2 Wgate) * h2 Wup)), h2 = ffn_norm(x)
  logits = norm(x) E^T (tied embeddings), soft-capped only if the file says so.

Gemma's RMSNorm multiplies by (1 + weight); llama.cpp's converter already added the 1 to every
`*norm.weight` in the GGUF (its Gemma3Model.norm_shift), so the file's values are used as they
are (their means are around 2 to 26, not around 0, which confirms it).

Usage: python3 gemma3_reference.py [MODEL.gguf] (default: $GLASSBOX_TEST_MODELS/gemma3-270m/...)
Writes gemma3-270m.reference.json beside this script. Takes about three minutes on two cores.

With --ablations it writes nothing and prints how often variants of the pass pick the stored
reference's top token: llama.cpp's roundings (activations rounded to 8 bits per block of 32, or
of 256 for K-quant weights, before every matmul; queries, keys, values and attention weights in
f16), no sliding window, and the wrong RoPE base on local layers. They size the test's bars.
"""
import hashlib
import json
import os
import sys
from pathlib import Path

import gguf
import numpy as np
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb

HERE = Path(__file__).resolve().parent
MODEL = "gemma3-270m/gemma-3-270m-q4_k_m.gguf"
OUTPUT = HERE / "gemma3-270m.reference.json"

# Gemma 3 constants that the GGUF does not carry (Hugging Face's Gemma3TextConfig for 270M):
# local layers' RoPE base, the global-layer period, and query_pre_attn_scalar (= head size).
ROPE_LOCAL_BASE = 10_000.0
GLOBAL_EVERY = 6
QUERY_PRE_ATTN_SCALAR = 256

# The Korean text is the seed glossary's first paragraphs, enough for at least 560 tokens (650
# with these), past the 512-token window, so that local layers really slide; the English one is
# about 200 tokens.
KOREAN_TOKENS = 560
ENGLISH = (
    "Retrieval-augmented generation answers a question in two steps. First, a search engine "
    "finds the passages of a library that are most likely to hold the answer: a keyword index "
    "scores words that appear in both the question and a passage, while a vector index compares "
    "their meanings as points in a space of a few hundred dimensions. The two rankings are "
    "merged, and a slower cross-encoder reads each candidate together with the question to put "
    "the best ones first. Second, the language model is given the question and the chosen "
    "passages, numbered, and is asked to answer only from them and to cite the numbers it used. "
    "Because the model reads the sources at the moment of answering, it can quote documents it "
    "never saw in training, and a reader can check every claim against its source. The quality "
    "of the answer therefore depends as much on the search as on the model: a passage that is "
    "never retrieved cannot be cited, however clever the model is."
)


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def sentencepiece_from_gguf(reader):
    """Gemma's tokenizer.model rebuilt from the GGUF vocabulary (pieces, scores, types)."""
    f = reader.fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode() for i in f["tokenizer.ggml.tokens"].data]
    scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    m = sp_pb.ModelProto()
    m.trainer_spec.model_type = sp_pb.TrainerSpec.BPE
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.vocab_size = len(tokens)
    m.trainer_spec.unk_id = field(reader, "tokenizer.ggml.unknown_token_id")
    m.trainer_spec.bos_id = field(reader, "tokenizer.ggml.bos_token_id")
    m.trainer_spec.eos_id = field(reader, "tokenizer.ggml.eos_token_id")
    m.trainer_spec.pad_id = field(reader, "tokenizer.ggml.padding_token_id")
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = bool(field(reader, "tokenizer.ggml.add_space_prefix"))
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    # GGUF token types are SentencePiece's piece types (1 normal ... 6 byte).
    for piece, score, kind in zip(tokens, scores, types):
        p = m.pieces.add()
        p.piece, p.score, p.type = piece, score, kind
    return spm.SentencePieceProcessor(model_proto=m.SerializeToString())


class Gemma3:
    def __init__(self, path):
        self.reader = gguf.GGUFReader(path)
        self.tensors = {t.name: t for t in self.reader.tensors}
        arch = field(self.reader, "general.architecture")
        assert arch == "gemma3", arch
        key = lambda k, default=None: (  # noqa: E731
            field(self.reader, f"gemma3.{k}") if f"gemma3.{k}" in self.reader.fields else default
        )
        self.n_layer = key("block_count")
        self.d = key("embedding_length")
        self.n_head = key("attention.head_count")
        self.n_kv = key("attention.head_count_kv")
        self.hd = key("attention.key_length")
        self.eps = key("attention.layer_norm_rms_epsilon")
        self.window = key("attention.sliding_window")
        self.rope_global = key("rope.freq_base")
        scaling = key("rope.scaling.type")
        self.rope_scale = key("rope.scaling.factor", 1.0) if scaling == "linear" else 1.0
        self.softcap = key("final_logit_softcapping")
        self.embed = self.matrix("token_embd.weight")
        self.rope_local = ROPE_LOCAL_BASE
        # Round as llama.cpp's CPU kernels do (see --ablations).
        self.llama_cpp_rounding = False

    def matrix(self, name):
        """A weight as float64, rows = outputs (GGUF's ne[1]), columns = inputs."""
        t = self.tensors[name]
        w = gguf.quants.dequantize(t.data, t.tensor_type)
        return np.asarray(w, dtype=np.float64).reshape(int(t.shape[1]), int(t.shape[0]))

    def mm(self, x, name):
        """x times the weight `name` transposed, its input rounded as ggml's matmul would."""
        if self.llama_cpp_rounding:
            kquant = self.tensors[name].tensor_type.name.endswith("_K")
            x = q8_blocks(x, 256 if kquant else 32)
        return x @ self.matrix(name).T

    def f16(self, x):
        return x.astype(np.float16).astype(np.float64) if self.llama_cpp_rounding else x

    def vector(self, name):
        return np.asarray(self.tensors[name].data, dtype=np.float64).reshape(-1)

    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos, base, scale):
        """NeoX rotation (the two halves of each head), x: (tokens, heads, hd)."""
        half = self.hd // 2
        inv = 1.0 / base ** (np.arange(half, dtype=np.float64) * 2.0 / self.hd)
        ang = (pos[:, None] / scale) * inv[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)

    @staticmethod
    def gelu_tanh(x):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))

    def is_global(self, layer):
        return (layer + 1) % GLOBAL_EVERY == 0

    def logits(self, ids):
        return self.output(self.hidden(ids))

    def output(self, x):
        """Logits of final hidden states (tied embeddings, soft-capped if the file says so)."""
        logits = self.mm(x, "token_embd.weight")
        if self.softcap:
            logits = self.softcap * np.tanh(logits / self.softcap)
        return logits

    def hidden(self, ids):
        """The final norm's output at every position."""
        ids = np.asarray(ids)
        n = len(ids)
        pos = np.arange(n, dtype=np.float64)
        x = self.embed[ids] * np.sqrt(self.d)
        i, j = np.arange(n)[:, None], np.arange(n)[None, :]
        causal = j <= i
        sliding = causal & (i - j < self.window)
        group = self.n_head // self.n_kv
        for layer in range(self.n_layer):
            p = lambda name: f"blk.{layer}.{name}"  # noqa: E731
            h = self.rms(x, self.vector(p("attn_norm.weight")))
            q = self.mm(h, p("attn_q.weight")).reshape(n, self.n_head, self.hd)
            k = self.mm(h, p("attn_k.weight")).reshape(n, self.n_kv, self.hd)
            v = self.f16(self.mm(h, p("attn_v.weight")).reshape(n, self.n_kv, self.hd))
            q = self.rms(q, self.vector(p("attn_q_norm.weight")))
            k = self.rms(k, self.vector(p("attn_k_norm.weight")))
            glob = self.is_global(layer)
            base, scale = (self.rope_global, self.rope_scale) if glob else (self.rope_local, 1.0)
            q = self.f16(self.rope(q, pos, base, scale))
            k = self.f16(self.rope(k, pos, base, scale))
            mask = causal if glob else sliding
            out = np.empty((n, self.n_head, self.hd))
            for head in range(self.n_head):
                kv = head // group
                s = q[:, head, :] @ k[:, kv, :].T * QUERY_PRE_ATTN_SCALAR**-0.5
                s = np.where(mask, s, -np.inf)
                s = np.exp(s - s.max(axis=1, keepdims=True))
                s /= s.sum(axis=1, keepdims=True)
                out[:, head, :] = self.f16(s) @ v[:, kv, :]
            attn = self.mm(out.reshape(n, -1), p("attn_output.weight"))
            x = x + self.rms(attn, self.vector(p("post_attention_norm.weight")))
            h = self.rms(x, self.vector(p("ffn_norm.weight")))
            act = self.gelu_tanh(self.mm(h, p("ffn_gate.weight"))) * self.mm(h, p("ffn_up.weight"))
            ffn = self.mm(act, p("ffn_down.weight"))
            x = x + self.rms(ffn, self.vector(p("post_ffw_norm.weight")))
        return self.rms(x, self.vector("output_norm.weight"))

    def perplexity(self, ids, rows=256):
        """exp of the mean negative log-probability of each next token (logits by `rows`)."""
        x = self.hidden(ids)
        nll = 0.0
        for at in range(0, len(ids) - 1, rows):
            logits = self.output(x[at : min(at + rows, len(ids) - 1)])
            m = logits.max(axis=1, keepdims=True)
            lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
            nxt = np.asarray(ids[at + 1 : at + 1 + len(logits)])
            nll += float((lse - logits[np.arange(len(logits)), nxt]).sum())
        return float(np.exp(nll / (len(ids) - 1)))


def korean_text(sp):
    """The glossary's first paragraphs, up to the one that reaches KOREAN_TOKENS tokens."""
    paragraphs = (HERE / "llm-concepts.ko.md").read_text(encoding="utf-8").split("\n\n")
    for n in range(1, len(paragraphs) + 1):
        text = "\n\n".join(paragraphs[:n])
        if len(sp.encode(text)) >= KOREAN_TOKENS:
            return text
    return text


def q8_blocks(x, block):
    """x with each block of values rounded to 8 bits of its largest magnitude (ggml's Q8_0,
    whose scale is stored in f16, and Q8_K)."""
    rows = x.reshape(-1, block)
    scale = np.abs(rows).max(axis=1, keepdims=True) / 127.0
    if block == 32:
        scale = scale.astype(np.float16).astype(np.float64)
    safe = np.where(scale > 0, scale, 1.0)
    return (np.clip(np.round(rows / safe), -127, 127) * scale).reshape(x.shape)


def ablations(model):
    """How often variants of the pass agree with the stored reference's top token."""
    stored = json.loads(OUTPUT.read_text(encoding="utf-8"))
    window = model.window

    def report(label):
        for text in stored["texts"]:
            top = np.asarray(text["argmax"])
            ours = model.logits(text["ids"]).argmax(axis=1)
            same = ours == top
            past = same[window:]
            print(
                f"{label}, {text['name']}: {same.sum()} of {len(top)}"
                + (f" ({past.sum()} of {len(past)} past the window)" if len(past) else "")
            )

    model.llama_cpp_rounding = True
    report("llama.cpp's roundings")
    model.llama_cpp_rounding = False
    model.window = 1 << 30
    report("no sliding window")
    model.window, model.rope_local = window, model.rope_global
    report("global RoPE base on local layers")


def summary(name, text, ids, logits):
    """Per position: the top token, the five best (id, logit), and log p(next token)."""
    top5 = np.argsort(-logits, axis=1)[:, :5]
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    next_logp = [float(logp[t, ids[t + 1]]) for t in range(len(ids) - 1)]
    nll = -np.mean(next_logp)
    print(f"{name}: {len(ids)} tokens, perplexity {np.exp(nll):.3f}")
    return {
        "name": name,
        "text": text,
        "ids": [int(t) for t in ids],
        "argmax": [int(t) for t in top5[:, 0]],
        "top5": [[[int(t), round(float(logits[r, t]), 4)] for t in row] for r, row in enumerate(top5)],
        "next_logprob": [round(v, 5) for v in next_logp],
    }


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    default = Path(os.environ.get("GLASSBOX_TEST_MODELS", Path.home() / ".cache/glassbox/test-models")) / MODEL
    args = [a for a in sys.argv[1:] if a != "--ablations"]
    path = Path(args[0]) if args else default
    model = Gemma3(path)
    if "--ablations" in sys.argv:
        return ablations(model)
    sp = sentencepiece_from_gguf(model.reader)
    bos = [field(model.reader, "tokenizer.ggml.bos_token_id")]
    texts = [("korean", korean_text(sp)), ("english", ENGLISH)]
    glossary = bos + [int(t) for t in sp.encode((HERE / "llm-concepts.ko.md").read_text(encoding="utf-8"))]
    glossary_ppl = model.perplexity(glossary)
    print(f"seed glossary: {len(glossary)} tokens, perplexity {glossary_ppl:.3f}")
    out = {
        "model": MODEL,
        "model_sha256": sha256(path),
        "generator": "tests/data/gemma3_reference.py (float64 NumPy, gguf dequantization, SentencePiece ids)",
        "texts": [
            summary(name, text, bos + sp.encode(text), model.logits(bos + sp.encode(text)))
            for name, text in texts
        ],
        # The whole seed glossary (tests/data/llm-concepts.ko.md, BOS first), every token scored.
        "glossary": {"ids": glossary, "perplexity": round(glossary_ppl, 4)},
    }
    OUTPUT.write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
