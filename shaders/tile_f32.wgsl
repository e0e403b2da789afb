// The prefill tiles in f32: core WGSL, 16 bytes of workgroup memory per four dimensions.

alias TileQuad = vec4<f32>;

fn to_tile(x: vec4<f32>) -> TileQuad {
    return x;
}

fn from_tile(x: TileQuad) -> vec4<f32> {
    return x;
}
