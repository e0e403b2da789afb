// The part every attention kernel shares; src/gpu puts it before each kernel's source.
//
// Layout, as the engine's cache keeps it: keys and values are f16, two per u32
// (`unpack2x16float`, core WGSL: no optional feature), in blocks `[block][kv_head][slot][dim]`;
// a sequence's position `p` lives in block `table[p / block_size]`, slot `p % block_size`.
// Query head `h` reads KV head `h / group` (GQA and MQA): repeated K/V are never made.
// Causal: the query at position `start + row` sees keys `0..=start + row`, so queries after a
// cached prefix see all of it.

struct Params {
    n_q: u32,
    n_head: u32,
    n_kv_head: u32,
    head_dim: u32,
    block_size: u32,
    // Position of the first query.
    start: u32,
    // Offset of this layer's keys and values in the K and V buffers, in u32 words.
    kv_base: u32,
    // Key ranges of the flash decode.
    n_splits: u32,
    scale: f32,
    // Heads the naive kernel computes (the first `n_sel` of `heads`).
    n_sel: u32,
    _pad1: u32,
    _pad2: u32,
}

// A finite start for a running maximum: exp(m_old - m_new) stays a number.
const LOW: f32 = -3.0e38;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<u32>;
@group(0) @binding(3) var<storage, read> v: array<u32>;
@group(0) @binding(4) var<storage, read> table: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

// Word offset of the pair `pair` of key/value position `pos` for KV head `kvh`.
fn kv_word(pos: u32, kvh: u32, pair: u32) -> u32 {
    let bs = params.block_size;
    let block = table[pos / bs];
    let pairs = params.head_dim / 2u;
    return params.kv_base + ((block * params.n_kv_head + kvh) * bs + pos % bs) * pairs + pair;
}

fn q_index(row: u32, head: u32) -> u32 {
    return (row * params.n_head + head) * params.head_dim;
}
