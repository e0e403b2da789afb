#!/usr/bin/env python3
"""Builds small vocabulary-only GGUF files for the tokenizer families we claim, and asks
llama.cpp's own tokenizer (`llama-tokenize`) for the ids of a set of texts under each of them.
tests/it/tokenizer.rs holds our tokenizer to these ids.

The BPE file (mini-bpe.gguf) keeps GPT-2's first 4,000 tokens and the merges among them; it is
tokenized under each pre-tokenizer name (`tokenizer.ggml.pre`) we support, in copies that differ
only in that name (the test makes the same copies), so what differs is exactly the
pre-tokenizer (and Llama 3's whole-word rule). The SentencePiece file keeps Llama 2's best
3,000 pieces and every one-character piece, without the space prefix (as Gemma's files have
it), with user-defined and control tokens in Gemma's style and EOS added to prompts.

Texts: llama.cpp's 46 test texts (ggml-vocab-*.gguf.inp) and the extra ones below. Each is
tokenized three ways: special text as text (`plain`, as llama.cpp's test-tokenizer-0 runs),
special text parsed (`parsed`), and as a prompt (parsed, with BOS/EOS as the file asks).

Gemma 3's real vocabulary is tokenized too when the test model is there
($GLASSBOX_TEST_MODELS/gemma3-270m), into gemma3-270m.llama-cpp.json.

Usage: python3 make_vectors.py [LLAMA_CPP_RUN]  (default: ../../../../shared/tools/llama.cpp/run)
Needs the `gguf` package. Writes the two mini-*.gguf files and the JSON files beside this script; takes a few
minutes (one llama-tokenize run per text).
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import gguf

HERE = Path(__file__).resolve().parent
RUN = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "../../../../shared/tools/llama.cpp/run"
SEPARATOR = "\n__ggml_vocab_test__\n"
GEMMA3 = "gemma3-270m/gemma-3-270m-q4_k_m.gguf"

EXTRA_TEXTS = [
    "I'M HERE, they'RE 'S 'Ve 'LL 'd can't",
    "1234567 12 3.14159 ٣٤٥ ½ 0x1F",
    "line1\r\nline2\n\n\n  indented\ttab \t\n",
    "中文字符测试 日本語のテキスト カタカナ 한국어 텍스트",
    "mixed😀emoji and  double  spaces   ",
    "<|endoftext|>Hello<|endoftext|> world<|endoftext|>",
    "Ünïcödé façade naïve ǅ ß",
    "$100 + <tag> ^~| `code` @user #tag",
    "x = [1, 2, 3]; // comment\n\tif (a != b) { return -1; }",
    "<s>Hello</s>world <unk> <s>",
    "a<tool_call>b  <tool_call>\n\nc",
    "\n\n\n\n  \n\n  x",
    "CamelCaseWord ALLCAPS lowercase MixedUP",
    "   leading and trailing   ",
    "<start_of_turn>user\nHi<end_of_turn>\n",
]

# Pre-tokenizer names to build a BPE file for; together they cover every regex we run.
BPE_PRES = [
    "gpt-2",
    "llama-bpe",
    "dbrx",
    "qwen2",
    "smollm",
    "starcoder",
    "deepseek-coder",
    "deepseek-v3",
    "tekken",
    "default",
]


def read(path):
    reader = gguf.GGUFReader(str(path))
    return {name: field.contents() for name, field in reader.fields.items()}


def write(path, arch, fields):
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in fields.items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_array(key, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def mini_bpe():
    src = read(HERE / "ggml-vocab-gpt-2.gguf")
    tokens = list(src["tokenizer.ggml.tokens"][:4000])
    kept = set(tokens)
    merges = [m for m in src["tokenizer.ggml.merges"]
              if all(p in kept for p in m.split(" ", 1)) and m.replace(" ", "", 1) in kept]
    types = [1] * len(tokens)
    # A control token (GPT-2's own) and a user-defined one, which is matched even in plain text.
    tokens += ["<|endoftext|>", "<tool_call>"]
    types += [3, 4]
    end = len(tokens) - 2
    return {
        "gpt2.block_count": 1,
        "gpt2.context_length": 1024,
        "gpt2.embedding_length": 64,
        "gpt2.feed_forward_length": 256,
        "gpt2.attention.head_count": 1,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.bos_token_id": end,
        "tokenizer.ggml.eos_token_id": end,
    }


def mini_spm_hparams():
    """The hyper-parameters llama.cpp reads even from a vocabulary-only llama file."""
    return {
        "llama.block_count": 1,
        "llama.context_length": 4096,
        "llama.embedding_length": 64,
        "llama.feed_forward_length": 256,
        "llama.attention.head_count": 1,
        "llama.rope.dimension_count": 64,
    }


def mini_spm():
    src = read(HERE / "ggml-vocab-llama-spm.gguf")
    tokens, scores, types = (src[k] for k in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                                                "tokenizer.ggml.token_type"))
    keep = [i for i in range(len(tokens)) if i < 3000 or len(tokens[i]) == 1]
    fields = {
        "tokens": [tokens[i] for i in keep],
        "scores": [float(scores[i]) for i in keep],
        "types": [int(types[i]) for i in keep],
    }
    # Gemma-style additions: runs of newlines and spaces as user-defined tokens, a turn marker
    # as a control token.
    for text, kind in [("\n\n", 4), ("\n\n\n", 4), ("  ", 4), ("<start_of_turn>", 3),
                       ("<end_of_turn>", 3)]:
        fields["tokens"].append(text)
        fields["scores"].append(0.0)
        fields["types"].append(kind)
    return {
        **mini_spm_hparams(),
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": fields["tokens"],
        "tokenizer.ggml.scores": fields["scores"],
        "tokenizer.ggml.token_type": fields["types"],
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.add_space_prefix": False,
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.ggml.add_eos_token": True,
    }


def tokenize(model, text, parse_special, prompt):
    with tempfile.NamedTemporaryFile("wb", suffix=".txt") as f:
        f.write(text.encode("utf-8"))
        f.flush()
        args = [str(RUN), "llama-tokenize", "-m", str(model), "-f", f.name, "--ids",
                "--no-escape", "--log-disable"]
        if not prompt:
            args.append("--no-bos")
        if not parse_special:
            args.append("--no-parse-special")
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def vectors_of(model, texts):
    return {
        mode: [tokenize(model, t, parse, prompt) for t in texts]
        for mode, parse, prompt in [("plain", False, False), ("parsed", True, False),
                                    ("prompt", True, True)]
    }


def json_lines(modes):
    """One line per vector keeps the file readable and its diffs small."""
    return ",\n".join(f'"{mode}": [\n' + ",\n".join(json.dumps(v) for v in ids) + "\n]"
                      for mode, ids in modes.items())


def gemma3(texts):
    """Gemma 3's real vocabulary, from the test model when it is there."""
    root = Path(os.environ.get("GLASSBOX_TEST_MODELS",
                               Path.home() / ".cache/glassbox/test-models"))
    model = root / GEMMA3
    if not model.is_file():
        print(f"{model} not found: Gemma 3's vectors left as they are", file=sys.stderr)
        return
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    # This llama.cpp predates the gemma3 architecture but tokenizes the same vocabulary alike:
    # give it the vocabulary alone, under an architecture it knows.
    fields = {k: v for k, v in read(model).items()
              if k.startswith("tokenizer.ggml.")}
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "gemma3-vocab.gguf"
        write(vocab, "llama", {**mini_spm_hparams(), **fields})
        body = json_lines(vectors_of(vocab, texts))
    head = json.dumps({"model": GEMMA3, "model_sha256": sha})[:-1]
    (HERE / "gemma3-270m.llama-cpp.json").write_text(f"{head},\n{body}}}\n", encoding="utf-8")


def main():
    inp = (HERE / "ggml-vocab-gpt-2.gguf.inp").read_text(encoding="utf-8")
    texts = inp.split(SEPARATOR)
    assert texts[-1] == "", "the file ends with a separator"
    texts = texts[:-1] + EXTRA_TEXTS
    write(HERE / "mini-bpe.gguf", "gpt2", {**mini_bpe(), "tokenizer.ggml.pre": "gpt-2"})
    write(HERE / "mini-spm-gemma-style.gguf", "llama", mini_spm())
    # label: (file, pre-tokenizer to put in a copy of it, or None for the file as it is)
    vocabs = {name: (name, None) for name in ["ggml-vocab-llama-spm.gguf",
                                               "ggml-vocab-gpt-2.gguf",
                                               "mini-spm-gemma-style.gguf"]}
    vocabs.update({f"mini-bpe {pre}": ("mini-bpe.gguf", pre) for pre in BPE_PRES})
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, (name, pre) in vocabs.items():
            model = HERE / name
            if pre:
                model = Path(tmp) / f"mini-bpe-{pre}.gguf"
                write(model, "gpt2", {**mini_bpe(), "tokenizer.ggml.pre": pre})
            head = json.dumps({"file": name, "pre": pre})[:-1]
            parts.append(f'"{label}": {head},\n' + json_lines(vectors_of(model, texts)) + "\n}")
            print(label, "done", file=sys.stderr)
    text = ('{"texts": ' + json.dumps(texts, ensure_ascii=False) + ',\n"vocabs": {\n'
            + ",\n".join(parts) + "\n}}\n")
    (HERE / "llama-cpp-vectors.json").write_text(text, encoding="utf-8")
    gemma3(texts)


if __name__ == "__main__":
    main()
