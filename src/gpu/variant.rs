//! Which build of the attention kernels an adapter gets, and the WGSL each build compiles: the
//! prefill tile its workgroup memory holds, the tiles kept in f16 where the device has f16
//! (half the memory, so twice the keys per tile), and the decode kernel's reductions by
//! subgroup operations where the device has them. The core build needs no optional feature.

use super::{GpuContext, GpuError};

/// What every kernel starts with: parameters, shared bindings, the cache's layout.
pub const PRELUDE: &str = include_str!("../../shaders/paged_kv.wgsl");
pub const FLASH: &str = include_str!("../../shaders/flash_attention.wgsl");
pub const NAIVE: &str = include_str!("../../shaders/naive_attention.wgsl");
pub const REDUCE_WORKGROUP: &str = include_str!("../../shaders/reduce_workgroup.wgsl");
pub const REDUCE_SUBGROUP: &str = include_str!("../../shaders/reduce_subgroup.wgsl");
pub const TILE_F32: &str = include_str!("../../shaders/tile_f32.wgsl");
pub const TILE_F16: &str = include_str!("../../shaders/tile_f16.wgsl");

/// Keys per prefill tile.
pub const TILES: [usize; 3] = [16, 32, 64];
const TILE_DECLARATION: &str = "const TILE: u32 = 16u;";

/// How the decode kernel reduces over its invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// A tree in workgroup memory: core WGSL.
    Workgroup,
    /// Subgroup operations, then one value per subgroup through workgroup memory.
    Subgroup,
}

/// How the prefill kernel keeps its key and value tiles in workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileStorage {
    /// Core WGSL: 1 KiB per key (keys and values, 128 dimensions).
    F32,
    /// 512 bytes per key. The cache holds f16 already, so nothing is lost.
    F16,
}

impl TileStorage {
    fn bytes_per_key(self) -> usize {
        match self {
            TileStorage::F32 => 1024,
            TileStorage::F16 => 512,
        }
    }
}

/// One build of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub tile: usize,
    pub reduction: Reduction,
    pub storage: TileStorage,
}

impl Variant {
    /// Every build `ctx` can run: each storage and reduction its device has, at each tile its
    /// workgroup memory holds (so that tests can force each one some adapter gets).
    pub fn all(ctx: &GpuContext) -> Vec<Variant> {
        let mut storages = vec![TileStorage::F32];
        if ctx.has(wgpu::Features::SHADER_F16) {
            storages.push(TileStorage::F16);
        }
        let mut reductions = vec![Reduction::Workgroup];
        if ctx.has(wgpu::Features::SUBGROUP) {
            reductions.push(Reduction::Subgroup);
        }
        let memory = ctx.limits.max_compute_workgroup_storage_size as usize;
        let mut all = Vec::new();
        for &storage in &storages {
            for tile in TILES {
                // The smallest tile always fits: 16 KiB is the least any adapter offers.
                if tile == TILES[0] || tile * storage.bytes_per_key() <= memory {
                    for &reduction in &reductions {
                        all.push(Variant {
                            tile,
                            reduction,
                            storage,
                        });
                    }
                }
            }
        }
        all
    }

    /// The build the engine uses: the largest tile, subgroups where there are, and f32 tiles
    /// unless f16 ones are larger.
    pub fn best(ctx: &GpuContext) -> Variant {
        Self::all(ctx)
            .into_iter()
            .max_by_key(|v| {
                (
                    v.tile,
                    v.reduction == Reduction::Subgroup,
                    v.storage == TileStorage::F32,
                )
            })
            .expect("the core build is always there")
    }

    /// The build with no optional feature, at the largest f32 tile the adapter holds.
    pub fn core(ctx: &GpuContext) -> Variant {
        Self::all(ctx)
            .into_iter()
            .filter(|v| v.storage == TileStorage::F32 && v.reduction == Reduction::Workgroup)
            .max_by_key(|v| v.tile)
            .expect("the core build is always there")
    }

    /// An error unless `ctx` can run this build.
    pub fn check(self, ctx: &GpuContext) -> Result<(), GpuError> {
        if Self::all(ctx).contains(&self) {
            Ok(())
        } else {
            Err(GpuError::Shape(
                "this build of the kernels",
                format!("{self:?} needs features or workgroup memory the device lacks"),
            ))
        }
    }

    /// The flash kernels' WGSL: tile storage, prelude, kernels with this tile, reductions.
    pub fn flash_source(self) -> String {
        let storage = match self.storage {
            TileStorage::F32 => TILE_F32,
            TileStorage::F16 => TILE_F16,
        };
        let reduction = match self.reduction {
            Reduction::Workgroup => REDUCE_WORKGROUP,
            Reduction::Subgroup => REDUCE_SUBGROUP,
        };
        let tile = format!("const TILE: u32 = {}u;", self.tile);
        let body = FLASH.replace(TILE_DECLARATION, &tile);
        format!("{storage}\n{PRELUDE}\n{body}\n{reduction}")
    }
}

/// The naive kernels' WGSL, after the prelude.
pub fn naive_source() -> String {
    format!("{PRELUDE}\n{NAIVE}")
}
