// The prefill tiles in f16 (only where the adapter has f16): 8 bytes of workgroup memory per
// four dimensions, so twice the keys fit a tile. Keys and values are f16 in the cache already,
// so keeping them in f16 loses nothing; the arithmetic stays in f32.
enable f16;

alias TileQuad = vec4<f16>;

fn to_tile(x: vec4<f32>) -> TileQuad {
    return vec4<f16>(x);
}

fn from_tile(x: TileQuad) -> vec4<f32> {
    return vec4<f32>(x);
}
