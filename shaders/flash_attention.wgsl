// Attention over a paged KV cache, FlashAttention style: the scores of a query never exist as a
// whole row; keys are visited tile by tile with a running maximum `m` and sum `l` (online
// softmax), and the output accumulates in f32. (`paged_kv.wgsl` comes first: the parameters,
// the shared bindings, the cache's layout.)
//
// Three entry points:
// - `prefill`: one workgroup per 64 (query row, head) pairs of one KV head; each K/V tile is
//   loaded once into workgroup memory for every query head that shares it.
// - `decode`: for few query rows, the keys are split into ranges of SPLIT, one workgroup per
//   (range, row, KV head), each reading the range's keys and values once for the query heads
//   that share them and writing their partial outputs with their (m, l), so that a single
//   query still fills the GPU;
// - `merge`: combines the ranges with a log-sum-exp reduction.
//
// The decode kernel's reductions over its invocations come from `reduce_workgroup.wgsl` (core
// WGSL) or `reduce_subgroup.wgsl` (subgroup operations, where the adapter has them), added
// after this file; how the prefill tiles are kept, from `tile_f32.wgsl` (core) or
// `tile_f16.wgsl` (half the workgroup memory, where the adapter has f16), put first.

// Largest head dimension (128), in groups of four dimensions.
const MAX_QUADS: u32 = 32u;
// Keys per tile in `prefill`: 2 x TILE keys x 32 quads of `TileQuad` (16 bytes in f32, 8 in
// f16) of workgroup memory. 16 keys in f32 (16 KiB) fit every adapter; the host sets TILE from
// the adapter's real limit.
const TILE: u32 = 16u;
// Keys per range in `decode`.
const SPLIT: u32 = 256u;

// Per (range, row, head): the range's unnormalised output, then its m and l.
@group(0) @binding(6) var<storage, read_write> partial_o: array<f32>;
@group(0) @binding(7) var<storage, read_write> partial_ml: array<vec2<f32>>;

// `TileQuad`, `to_tile` and `from_tile` come from `tile_f32.wgsl` or `tile_f16.wgsl`, put
// first.
var<workgroup> tile_k: array<TileQuad, TILE * MAX_QUADS>;
var<workgroup> tile_v: array<TileQuad, TILE * MAX_QUADS>;

// Four dimensions of key/value position `pos` for KV head `kvh`, from two words.
fn kv_quad(buffer_is_k: bool, pos: u32, kvh: u32, quad: u32) -> vec4<f32> {
    let at = kv_word(pos, kvh, 2u * quad);
    if buffer_is_k {
        return vec4<f32>(unpack2x16float(k[at]), unpack2x16float(k[at + 1u]));
    }
    return vec4<f32>(unpack2x16float(v[at]), unpack2x16float(v[at + 1u]));
}

// The inner loops step 16 dimensions at a time: besides being quicker, this keeps every
// invocation under the 65,535 loop iterations after which Mesa's software Vulkan (lavapipe)
// cuts loops short, up to thousands of keys.
@compute @workgroup_size(64)
fn prefill(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = params.n_head / params.n_kv_head;
    let kvh = wg.y;
    let quads = params.head_dim / 4u;
    let index = wg.x * 64u + lid;
    let row = index / group;
    let head = kvh * group + index % group;
    let valid = row < params.n_q;

    // The last query row of this workgroup bounds the keys it needs (uniform across it).
    let last_row = min(params.n_q - 1u, (wg.x * 64u + 63u) / group);
    let n_keys = params.start + last_row + 1u;
    let pos = params.start + row;

    var qv: array<vec4<f32>, MAX_QUADS>;
    var o: array<vec4<f32>, MAX_QUADS>;
    if valid {
        let base = q_index(row, head);
        for (var c = 0u; c < quads; c++) {
            let at = base + 4u * c;
            qv[c] = vec4<f32>(q[at], q[at + 1u], q[at + 2u], q[at + 3u]);
        }
    }
    var m = LOW;
    var l = 0.0;
    var s: array<f32, TILE>;

    for (var tile_start = 0u; tile_start < n_keys; tile_start += TILE) {
        // Every invocation loads a share of the tile: TILE keys x `quads` quads.
        for (var w = lid; w < TILE * quads; w += 64u) {
            let j = tile_start + w / quads;
            var kk = vec4<f32>(0.0);
            var vv = vec4<f32>(0.0);
            if j < n_keys {
                kk = kv_quad(true, j, kvh, w % quads);
                vv = kv_quad(false, j, kvh, w % quads);
            }
            tile_k[w] = to_tile(kk);
            tile_v[w] = to_tile(vv);
        }
        workgroupBarrier();
        if valid && tile_start <= pos {
            let n = min(TILE, pos + 1u - tile_start);
            var m_tile = m;
            for (var t = 0u; t < n; t++) {
                let kt = t * quads;
                var score = 0.0;
                for (var c = 0u; c < quads; c += 4u) {
                    score += dot(qv[c], from_tile(tile_k[kt + c]))
                        + dot(qv[c + 1u], from_tile(tile_k[kt + c + 1u]))
                        + dot(qv[c + 2u], from_tile(tile_k[kt + c + 2u]))
                        + dot(qv[c + 3u], from_tile(tile_k[kt + c + 3u]));
                }
                s[t] = score * params.scale;
                m_tile = max(m_tile, s[t]);
            }
            let correction = exp(m - m_tile);
            l *= correction;
            for (var c = 0u; c < quads; c += 4u) {
                o[c] *= correction;
                o[c + 1u] *= correction;
                o[c + 2u] *= correction;
                o[c + 3u] *= correction;
            }
            for (var t = 0u; t < n; t++) {
                let e = exp(s[t] - m_tile);
                let vt = t * quads;
                l += e;
                for (var c = 0u; c < quads; c += 4u) {
                    o[c] += e * from_tile(tile_v[vt + c]);
                    o[c + 1u] += e * from_tile(tile_v[vt + c + 1u]);
                    o[c + 2u] += e * from_tile(tile_v[vt + c + 2u]);
                    o[c + 3u] += e * from_tile(tile_v[vt + c + 3u]);
                }
            }
            m = m_tile;
        }
        workgroupBarrier();
    }

    if valid {
        var inv = 0.0;
        if l > 0.0 {
            inv = 1.0 / l;
        }
        let base = q_index(row, head);
        for (var c = 0u; c < quads; c++) {
            let x = o[c] * inv;
            out[base + 4u * c] = x.x;
            out[base + 4u * c + 1u] = x.y;
            out[base + 4u * c + 2u] = x.z;
            out[base + 4u * c + 3u] = x.w;
        }
    }
}

// Query heads per decode workgroup: the heads that share a KV head read each key and value once.
const MAX_GROUP: u32 = 8u;

var<workgroup> scores: array<f32, 2048>; // MAX_GROUP * SPLIT
var<workgroup> scratch: array<f32, 512>; // MAX_GROUP * 64

// One workgroup per (key range, query row, KV head, chunk of up to MAX_GROUP of its query heads).
// The entry point `decode` and `reduce_heads` come from one of `reduce_*.wgsl`.
fn decode_in(wg: vec3<u32>, lane: Lane) {
    let lid = lane.lid;
    let group = params.n_head / params.n_kv_head;
    let chunks = (group + MAX_GROUP - 1u) / MAX_GROUP;
    let range = wg.x;
    let row = wg.y / (params.n_kv_head * chunks);
    let kvh = (wg.y / chunks) % params.n_kv_head;
    let chunk = wg.y % chunks;
    let first_head = kvh * group + chunk * MAX_GROUP;
    let g = min(MAX_GROUP, group - chunk * MAX_GROUP);
    let pairs = params.head_dim / 2u;
    let n_keys = params.start + row + 1u;
    let lo = min(range * SPLIT, n_keys);
    let hi = min(lo + SPLIT, n_keys);

    // Scores of this range for the g heads, one key per invocation at a time.
    var m_own: array<f32, MAX_GROUP>;
    for (var h = 0u; h < g; h++) {
        m_own[h] = LOW;
    }
    for (var j = lo + lid; j < hi; j += 64u) {
        var acc: array<f32, MAX_GROUP>;
        for (var p = 0u; p < pairs; p++) {
            let kk = unpack2x16float(k[kv_word(j, kvh, p)]);
            for (var h = 0u; h < g; h++) {
                let qb = q_index(row, first_head + h) + 2u * p;
                acc[h] += q[qb] * kk.x + q[qb + 1u] * kk.y;
            }
        }
        for (var h = 0u; h < g; h++) {
            let sj = acc[h] * params.scale;
            scores[h * SPLIT + j - lo] = sj;
            m_own[h] = max(m_own[h], sj);
        }
    }
    // Each head's maximum over the range, then its sum of exponentials.
    for (var h = 0u; h < g; h++) {
        scratch[h * 64u + lid] = m_own[h];
    }
    reduce_heads(lane, g, true);
    var m: array<f32, MAX_GROUP>;
    for (var h = 0u; h < g; h++) {
        m[h] = scratch[h * 64u];
    }
    workgroupBarrier();
    for (var h = 0u; h < g; h++) {
        var l_own = 0.0;
        for (var j = lo + lid; j < hi; j += 64u) {
            let e = exp(scores[h * SPLIT + j - lo] - m[h]);
            scores[h * SPLIT + j - lo] = e;
            l_own += e;
        }
        scratch[h * 64u + lid] = l_own;
    }
    reduce_heads(lane, g, false);

    // Each invocation sums the weighted values of its pair of dimensions for all g heads,
    // reading each value once.
    for (var p = lid; p < pairs; p += 64u) {
        var acc: array<vec2<f32>, MAX_GROUP>;
        for (var j = lo; j < hi; j++) {
            let vv = unpack2x16float(v[kv_word(j, kvh, p)]);
            for (var h = 0u; h < g; h++) {
                acc[h] += scores[h * SPLIT + j - lo] * vv;
            }
        }
        for (var h = 0u; h < g; h++) {
            let slot = (range * params.n_q + row) * params.n_head + first_head + h;
            partial_o[slot * params.head_dim + 2u * p] = acc[h].x;
            partial_o[slot * params.head_dim + 2u * p + 1u] = acc[h].y;
        }
    }
    if lid < g {
        let slot = (range * params.n_q + row) * params.n_head + first_head + lid;
        partial_ml[slot] = vec2<f32>(m[lid], scratch[lid * 64u]);
    }
}

@compute @workgroup_size(64)
fn merge(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pair_count = params.n_q * params.n_head;
    let rh = wg.x;
    var m = LOW;
    for (var s = 0u; s < params.n_splits; s++) {
        let ml = partial_ml[s * pair_count + rh];
        if ml.y > 0.0 {
            m = max(m, ml.x);
        }
    }
    var l = 0.0;
    for (var s = 0u; s < params.n_splits; s++) {
        let ml = partial_ml[s * pair_count + rh];
        if ml.y > 0.0 {
            l += ml.y * exp(ml.x - m);
        }
    }
    var inv = 0.0;
    if l > 0.0 {
        inv = 1.0 / l;
    }
    for (var d = lid; d < params.head_dim; d += 64u) {
        var acc = 0.0;
        for (var s = 0u; s < params.n_splits; s++) {
            let ml = partial_ml[s * pair_count + rh];
            if ml.y > 0.0 {
                acc += partial_o[(s * pair_count + rh) * params.head_dim + d] * exp(ml.x - m);
            }
        }
        out[rh * params.head_dim + d] = acc * inv;
    }
}
