// The decode kernel's reductions in core WGSL: a tree in workgroup memory, six barriers each.

struct Lane {
    lid: u32,
}

@compute @workgroup_size(64)
fn decode(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    decode_in(wg, Lane(lid));
}

// Reduces `scratch[h * 64..][..64]` for the first `g` heads with max (is_max) or sum into
// `scratch[h * 64]`, which every invocation may read afterwards.
fn reduce_heads(lane: Lane, g: u32, is_max: bool) {
    let lid = lane.lid;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride /= 2u) {
        if lid < stride {
            for (var h = 0u; h < g; h++) {
                let a = h * 64u + lid;
                if is_max {
                    scratch[a] = max(scratch[a], scratch[a + stride]);
                } else {
                    scratch[a] += scratch[a + stride];
                }
            }
        }
        workgroupBarrier();
    }
}
