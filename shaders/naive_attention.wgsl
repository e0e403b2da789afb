// Attention the textbook way, in three passes over a materialised score matrix: what the flash
// kernel is measured against (`glassbox bench attention`), and the pass that records softmax
// probabilities for the attention panel (the first two passes, for the chosen heads only).
// (`paged_kv.wgsl` comes first: the parameters, the shared bindings, the cache's layout.)
//
// A "pair" is (query row, selected head), `row * n_sel + i` for head `heads[i]`. The score
// matrix holds `n_keys = start + n_q` keys per pair, so it grows with the square of the
// sequence: the memory the flash kernel never needs.
//
// - `scores`: one invocation per (pair, key): q . k / sqrt(d), for the keys the row sees.
// - `softmax`: one workgroup per pair, in place; keys the row does not see become 0.
// - `weighted`: one workgroup per pair: out = sum over keys of p * v (all heads selected).

@group(0) @binding(6) var<storage, read_write> scores: array<f32>;
// The selected heads. (Bound read-write only because the kernels share one binding layout.)
@group(0) @binding(7) var<storage, read_write> heads: array<u32>;

// Workgroups per dispatch dimension that every adapter allows: pairs go over y, then z.
const MAX_GROUPS: u32 = 65535u;

struct Pair {
    row: u32,
    head: u32,
    kvh: u32,
    // Keys this row sees (causal).
    seen: u32,
    // Its first element in `scores`.
    at: u32,
}

fn pair_of(index: u32) -> Pair {
    let row = index / params.n_sel;
    let head = heads[index % params.n_sel];
    let n_keys = params.start + params.n_q;
    let kvh = head / (params.n_head / params.n_kv_head);
    return Pair(row, head, kvh, params.start + row + 1u, index * n_keys);
}

fn pair_index(wg: vec3<u32>) -> u32 {
    return wg.z * MAX_GROUPS + wg.y;
}

@compute @workgroup_size(64)
fn scores_pass(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let index = pair_index(wg);
    if index >= params.n_q * params.n_sel {
        return;
    }
    let pair = pair_of(index);
    let j = wg.x * 64u + lid;
    if j >= pair.seen {
        return;
    }
    let qb = q_index(pair.row, pair.head);
    var score = 0.0;
    for (var p = 0u; p < params.head_dim / 2u; p++) {
        let kk = unpack2x16float(k[kv_word(j, pair.kvh, p)]);
        score += q[qb + 2u * p] * kk.x + q[qb + 2u * p + 1u] * kk.y;
    }
    scores[pair.at + j] = score * params.scale;
}

var<workgroup> scratch: array<f32, 64>;

// Reduces `scratch` with max (is_max) or sum; every invocation gets the result.
fn reduce(lid: u32, is_max: bool) -> f32 {
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride /= 2u) {
        if lid < stride {
            if is_max {
                scratch[lid] = max(scratch[lid], scratch[lid + stride]);
            } else {
                scratch[lid] += scratch[lid + stride];
            }
        }
        workgroupBarrier();
    }
    let result = scratch[0];
    workgroupBarrier();
    return result;
}

@compute @workgroup_size(64)
fn softmax(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let index = pair_index(wg);
    // Uniform across the workgroup, so the barriers below stay uniform.
    if index >= params.n_q * params.n_sel {
        return;
    }
    let pair = pair_of(index);
    var m_own = LOW;
    for (var j = lid; j < pair.seen; j += 64u) {
        m_own = max(m_own, scores[pair.at + j]);
    }
    scratch[lid] = m_own;
    let m = reduce(lid, true);
    var l_own = 0.0;
    for (var j = lid; j < pair.seen; j += 64u) {
        let e = exp(scores[pair.at + j] - m);
        scores[pair.at + j] = e;
        l_own += e;
    }
    scratch[lid] = l_own;
    let inv = 1.0 / reduce(lid, false);
    let n_keys = params.start + params.n_q;
    for (var j = lid; j < n_keys; j += 64u) {
        var p = 0.0;
        if j < pair.seen {
            p = scores[pair.at + j] * inv;
        }
        scores[pair.at + j] = p;
    }
}

@compute @workgroup_size(64)
fn weighted(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let index = pair_index(wg);
    if index >= params.n_q * params.n_sel {
        return;
    }
    let pair = pair_of(index);
    let ob = q_index(pair.row, pair.head);
    for (var p = lid; p < params.head_dim / 2u; p += 64u) {
        var acc = vec2<f32>(0.0);
        for (var j = 0u; j < pair.seen; j++) {
            acc += scores[pair.at + j] * unpack2x16float(v[kv_word(j, pair.kvh, p)]);
        }
        out[ob + 2u * p] = acc.x;
        out[ob + 2u * p + 1u] = acc.y;
    }
}
