// The decode kernel's reductions with subgroup operations (only where the adapter offers
// them): each subgroup reduces in registers, one lane of each writes its result, and one
// invocation combines those; three barriers instead of six.

struct Lane {
    lid: u32,
    subgroup: u32,
    n_subgroups: u32,
    first: bool,
}

@compute @workgroup_size(64)
fn decode(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) n_subgroups: u32,
    @builtin(subgroup_invocation_id) in_subgroup: u32,
) {
    decode_in(wg, Lane(lid, subgroup, n_subgroups, in_subgroup == 0u));
}

// Reduces `scratch[h * 64..][..64]` for the first `g` heads with max (is_max) or sum into
// `scratch[h * 64]`, which every invocation may read afterwards.
fn reduce_heads(lane: Lane, g: u32, is_max: bool) {
    var own: array<f32, MAX_GROUP>;
    for (var h = 0u; h < g; h++) {
        own[h] = scratch[h * 64u + lane.lid];
    }
    workgroupBarrier();
    for (var h = 0u; h < g; h++) {
        var r: f32;
        if is_max {
            r = subgroupMax(own[h]);
        } else {
            r = subgroupAdd(own[h]);
        }
        if lane.first {
            scratch[h * 64u + lane.subgroup] = r;
        }
    }
    workgroupBarrier();
    if lane.lid == 0u {
        for (var h = 0u; h < g; h++) {
            var acc = scratch[h * 64u];
            for (var s = 1u; s < lane.n_subgroups; s++) {
                if is_max {
                    acc = max(acc, scratch[h * 64u + s]);
                } else {
                    acc += scratch[h * 64u + s];
                }
            }
            scratch[h * 64u] = acc;
        }
    }
    workgroupBarrier();
}
