//! Our WGSL attention kernels on a real wgpu device (Mesa's lavapipe where there is no GPU),
//! held against an f64 reference on fresh random inputs each run (the seed is printed on
//! failure): MHA, GQA 3:1 (SmolLM2), GQA 7:1 (Qwen2.5), MQA over 12 heads (more than the 8 of
//! one decode workgroup); head dims 64 and 128; from one key to 2,048, with lengths that are
//! not multiples of the tile, range or block size; prompts from scratch and after a cached
//! prefix, and single-token decoding; every case through every build of the flash kernels the
//! adapter runs (tile sizes, f16 tiles, subgroup reductions), and through the naive three-pass
//! kernel.

use glassbox::gpu::attention::{AttentionKernels, AttnShape, Kernel, PagedKv};
use glassbox::gpu::variant::{
    FLASH, NAIVE, PRELUDE, REDUCE_SUBGROUP, REDUCE_WORKGROUP, Reduction, TILE_F16, TILE_F32, TILES,
    TileStorage, Variant, naive_source,
};
use glassbox::gpu::{AdapterChoice, GpuContext};
use glassbox::rng::Rng;
use half::f16;

fn validate(name: &str, source: &str, capabilities: naga::valid::Capabilities) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
}

/// Every file under shaders/ is compiled in, and every build of the kernels is valid WGSL
/// with only the capabilities it asks for: the core build none beyond what every adapter wgpu
/// runs on grants (unpack2x16float's half-float conversion in f32 code), the others f16 or
/// subgroups.
#[test]
fn every_shader_is_valid_wgsl() {
    let compiled_in = [
        PRELUDE,
        FLASH,
        NAIVE,
        REDUCE_WORKGROUP,
        REDUCE_SUBGROUP,
        TILE_F32,
        TILE_F16,
    ];
    let mut files = 0;
    for entry in std::fs::read_dir("shaders").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                compiled_in.contains(&text.as_str()),
                "{} is not compiled in",
                path.display()
            );
            files += 1;
        }
    }
    assert_eq!(files, compiled_in.len());
    use naga::valid::Capabilities as C;
    let core = C::SHADER_FLOAT16_IN_FLOAT32;
    validate("naive", &naive_source(), core);
    for tile in TILES {
        for storage in [TileStorage::F32, TileStorage::F16] {
            for reduction in [Reduction::Workgroup, Reduction::Subgroup] {
                let variant = Variant {
                    tile,
                    reduction,
                    storage,
                };
                let mut needs = core;
                if storage == TileStorage::F16 {
                    needs |= C::SHADER_FLOAT16;
                }
                if reduction == Reduction::Subgroup {
                    needs |= C::SUBGROUP;
                }
                let source = variant.flash_source();
                assert!(source.contains(&format!("const TILE: u32 = {tile}u;")));
                validate(&format!("{variant:?}"), &source, needs);
            }
        }
    }
}

/// One attention call's inputs: a pool of blocks larger than the sequence needs (the extra
/// blocks hold values that would show if read), in shuffled order.
struct Case {
    shape: AttnShape,
    q: Vec<f32>,
    k: Vec<f16>,
    v: Vec<f16>,
    table: Vec<u32>,
    /// `k` and `v` as the kernels read them.
    words: (Vec<u32>, Vec<u32>),
}

impl Case {
    fn new(
        rng: &mut Rng,
        heads: (usize, usize),
        head_dim: usize,
        start: usize,
        n_q: usize,
    ) -> Case {
        let block_size = 16;
        let shape = AttnShape {
            n_q,
            n_head: heads.0,
            n_kv_head: heads.1,
            head_dim,
            block_size,
            start,
        };
        let blocks = (start + n_q).div_ceil(block_size);
        let pool = blocks + 3;
        let mut ids: Vec<u32> = (0..pool as u32).collect();
        for i in (1..ids.len()).rev() {
            ids.swap(i, rng.below(i + 1));
        }
        let mut uniform = |n: usize, scale: f32| -> Vec<f32> {
            (0..n)
                .map(|_| (rng.next_f32() * 2.0 - 1.0) * scale)
                .collect()
        };
        let values = pool * heads.1 * block_size * head_dim;
        let half = |x: Vec<f32>| x.into_iter().map(f16::from_f32).collect::<Vec<_>>();
        let q = uniform(n_q * heads.0 * head_dim, 1.5);
        // Keys spread enough that some rows' softmax is sharp, others flat.
        let (k, v) = (half(uniform(values, 2.0)), half(uniform(values, 1.0)));
        Case {
            q,
            words: (pack(&k), pack(&v)),
            k,
            v,
            table: ids[..blocks].to_vec(),
            shape,
        }
    }

    fn kv(&self) -> PagedKv<'_> {
        PagedKv {
            k: &self.words.0,
            v: &self.words.1,
            table: &self.table,
        }
    }

    fn offset(&self, pos: usize, kvh: usize) -> usize {
        let s = &self.shape;
        let block = self.table[pos / s.block_size] as usize;
        ((block * s.n_kv_head + kvh) * s.block_size + pos % s.block_size) * s.head_dim
    }

    /// Softmax weights in f64 of query `row`, `head`, over the keys it sees.
    fn weights(&self, row: usize, head: usize) -> Vec<f64> {
        let s = &self.shape;
        let hd = s.head_dim;
        let kvh = head / (s.n_head / s.n_kv_head);
        let scale = 1.0 / (hd as f64).sqrt();
        let q = &self.q[(row * s.n_head + head) * hd..][..hd];
        let scores: Vec<f64> = (0..s.start + row + 1)
            .map(|j| {
                let k = &self.k[self.offset(j, kvh)..][..hd];
                q.iter()
                    .zip(k)
                    .map(|(&a, b)| a as f64 * b.to_f64())
                    .sum::<f64>()
                    * scale
            })
            .collect();
        let max = scores.iter().cloned().fold(f64::MIN, f64::max);
        let weights: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        weights.iter().map(|w| w / total).collect()
    }

    /// Softmax attention in f64 from the same f16 keys and values.
    fn reference(&self) -> Vec<f64> {
        let s = &self.shape;
        let hd = s.head_dim;
        let mut out = Vec::with_capacity(s.n_q * s.n_head * hd);
        for row in 0..s.n_q {
            for head in 0..s.n_head {
                let kvh = head / (s.n_head / s.n_kv_head);
                let mut o = vec![0f64; hd];
                for (j, w) in self.weights(row, head).iter().enumerate() {
                    let v = &self.v[self.offset(j, kvh)..][..hd];
                    for (o, x) in o.iter_mut().zip(v) {
                        *o += w * x.to_f64();
                    }
                }
                out.extend(o);
            }
        }
        out
    }

    /// `n_q x heads x (start + n_q)` probabilities, 0 for keys a row does not see.
    fn reference_probabilities(&self, heads: &[usize]) -> Vec<f64> {
        let n_keys = self.shape.start + self.shape.n_q;
        let mut out = Vec::new();
        for row in 0..self.shape.n_q {
            for &head in heads {
                let mut w = self.weights(row, head);
                w.resize(n_keys, 0.0);
                out.extend(w);
            }
        }
        out
    }
}

/// f16 values two to a u32 word, the first in the low half (as `unpack2x16float` reads them).
fn pack(values: &[f16]) -> Vec<u32> {
    values
        .chunks(2)
        .map(|p| p[0].to_bits() as u32 | (p[1].to_bits() as u32) << 16)
        .collect()
}

fn relative_error(got: &[f32], want: &[f64]) -> f64 {
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, w)| (g as f64 - w).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|w| w * w).sum();
    (diff / norm).sqrt()
}

fn context() -> GpuContext {
    GpuContext::new(AdapterChoice::AllowSoftware)
        .expect("a wgpu adapter (scripts/test installs Mesa's lavapipe)")
}

fn kernels() -> AttentionKernels {
    AttentionKernels::new(&context()).expect("the kernels build")
}

fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Every build of the kernels the adapter can run (lavapipe: f32 and f16 tiles of every size
/// that fits, both reductions): the builds other adapters get are tested here too.
#[test]
fn kernels_match_an_f64_reference() {
    let ctx = context();
    let all = Variant::all(&ctx);
    // Prefill with every tile and storage; decode with every reduction; the naive kernel once.
    let mut variants: Vec<(AttentionKernels, Kernel)> = Vec::new();
    for &v in &all {
        let kernels = || AttentionKernels::with(&ctx, v).unwrap();
        // f16 tiles of the smallest size are never chosen: f32 ones of that size always fit.
        let ships = v.storage == TileStorage::F32 || v.tile > TILES[0];
        if v.reduction == Reduction::Workgroup && ships {
            variants.push((kernels(), Kernel::Prefill));
        }
        if v.tile == TILES[0] && v.storage == TileStorage::F32 {
            variants.push((kernels(), Kernel::Decode));
        }
    }
    variants.push((AttentionKernels::new(&ctx).unwrap(), Kernel::Naive));
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    let heads = [(4, 4), (9, 3), (14, 2), (12, 1)];
    // (start, n_q): decoding after 0..2,047 cached keys, prompts from scratch and after a prefix.
    let calls = [
        (0, 1),
        (15, 1),
        (255, 1),
        (256, 1),
        (1000, 1),
        (2047, 1),
        (0, 37),
        (0, 200),
        (5, 70),
        (300, 129),
        (1900, 148),
    ];
    let mut worst = 0f64;
    for (i, &h) in heads.iter().enumerate() {
        for head_dim in [64, 128] {
            for &(start, n_q) in &calls {
                let case = Case::new(&mut rng, h, head_dim, start, n_q);
                let want = case.reference();
                let kv = case.kv();
                for (kernels, kernel) in &variants {
                    let got = kernels.run(&case.shape, &case.q, &kv, *kernel).unwrap();
                    let err = relative_error(&got, &want);
                    assert!(
                        err < 1e-4,
                        "{kernel:?} ({:?}) {:?}: relative error {err:e} (seed {seed}, heads case {i})",
                        kernels.variant(),
                        case.shape
                    );
                    worst = worst.max(err);
                }
            }
        }
    }
    eprintln!("{all:?}: worst relative error {worst:e}");
}

/// The pass that records probabilities for the attention panel, for some heads only.
#[test]
fn probabilities_of_chosen_heads_match_an_f64_reference() {
    let kernels = kernels();
    let seed = fresh_seed();
    let mut rng = Rng::new(seed);
    for (start, n_q, heads) in [
        (0, 40, vec![0, 4, 8]),
        (100, 1, vec![7]),
        (30, 9, vec![2, 3]),
    ] {
        let case = Case::new(&mut rng, (9, 3), 64, start, n_q);
        let got = kernels
            .probabilities(&case.shape, &case.q, &case.kv(), &heads)
            .unwrap();
        let want = case.reference_probabilities(&heads);
        assert_eq!(got.len(), want.len());
        let worst = got
            .iter()
            .zip(&want)
            .map(|(&g, w)| (g as f64 - w).abs())
            .fold(0f64, f64::max);
        assert!(worst < 1e-5, "largest difference {worst:e} (seed {seed})");
    }
    let case = Case::new(&mut rng, (9, 3), 64, 0, 4);
    let err = kernels
        .probabilities(&case.shape, &case.q, &case.kv(), &[9])
        .unwrap_err();
    assert!(err.to_string().contains("head 9 of 9"), "{err}");
}

/// A whole 2,048-token prompt at once: every query row its own causal length.
#[test]
fn a_long_prompt_in_one_call() {
    let kernels = kernels();
    let mut rng = Rng::new(42);
    let case = Case::new(&mut rng, (9, 3), 64, 0, 2048);
    let kv = case.kv();
    let got = kernels
        .run(&case.shape, &case.q, &kv, Kernel::Prefill)
        .unwrap();
    let err = relative_error(&got, &case.reference());
    assert!(err < 1e-4, "relative error {err:e}");
}

#[test]
fn shapes_the_kernels_cannot_take_are_errors() {
    let kernels = kernels();
    let mut rng = Rng::new(1);
    let case = Case::new(&mut rng, (4, 4), 64, 0, 3);
    let short = PagedKv {
        table: &[],
        ..case.kv()
    };
    let err = kernels
        .run(&case.shape, &case.q, &short, Kernel::Prefill)
        .unwrap_err();
    assert!(err.to_string().contains("blocks in its table"), "{err}");
    let wide = AttnShape {
        head_dim: 256,
        ..case.shape
    };
    let err = kernels
        .run(&wide, &case.q, &short, Kernel::Decode)
        .unwrap_err();
    assert!(err.to_string().contains("head dimension"), "{err}");
}

/// SmolLM2 with our kernels on the GPU for every layer: at every position of the reference
/// texts its top token is the CPU reference attention's almost everywhere, as the fused CPU
/// attention's is (the same test, in llm.rs).
#[test]
fn the_model_on_gpu_attention_agrees_with_the_cpu() {
    crate::llm::agrees_with_reference_attention(glassbox::llm::AttentionKind::Gpu);
}

/// The naive kernel's score matrix grows with the square of the sequence; where it outgrows
/// what the adapter binds, it says so, and the flash kernel still runs.
#[test]
fn the_naive_kernel_needs_quadratic_memory_and_says_when_it_runs_out() {
    let ctx = context();
    let kernels = AttentionKernels::new(&ctx).unwrap();
    let mut rng = Rng::new(7);
    let case = Case::new(&mut rng, (9, 3), 64, 0, 2048);
    let need = (9 * 2048 * 2048 * 4) as u64;
    let limit = ctx.largest_binding();
    let naive = kernels.run(&case.shape, &case.q, &case.kv(), Kernel::Naive);
    if need > limit {
        let err = naive.unwrap_err().to_string();
        assert!(err.contains("score matrix") && err.contains("MiB"), "{err}");
    } else {
        assert!(relative_error(&naive.unwrap(), &case.reference()) < 1e-4);
    }
    let flash = kernels
        .run(&case.shape, &case.q, &case.kv(), Kernel::Prefill)
        .unwrap();
    assert_eq!(flash.len(), 2048 * 9 * 64);
}

/// The attention panel's probabilities computed on the GPU: the first layer's rows (whose
/// inputs are the same on both backends) agree with the CPU's, and the GPU stayed in use.
#[test]
fn recorded_attention_on_the_gpu_agrees_with_the_cpu() {
    use glassbox::llm::{AttentionKind, AttnRecord, CaptureSpec};
    let prompt = crate::llm::ids(&crate::llm::reference()["greedy"][1]["prompt_ids"]);
    let capture = CaptureSpec {
        layers: vec![0],
        heads: (0..9).collect(),
    };
    let mut gpu = crate::llm::engine(AttentionKind::Gpu);
    let mut on_gpu = gpu.attention_of(&prompt, &capture).unwrap();
    assert_eq!(gpu.attention_name(), "gpu", "{:?}", gpu.attention_notice());
    let mut on_cpu = crate::llm::engine(AttentionKind::CpuFused)
        .attention_of(&prompt, &capture)
        .unwrap();
    assert_eq!(on_gpu.len(), 9 * prompt.len());
    let key = |r: &AttnRecord| (r.layer, r.row.head, r.row.pos);
    on_gpu.sort_by_key(key);
    on_cpu.sort_by_key(key);
    for (a, b) in on_gpu.iter().zip(&on_cpu) {
        assert_eq!(key(a), key(b));
        assert_eq!(a.row.probs.len(), a.row.pos + 1);
        let worst = crate::common::largest_difference(&a.row.probs, &b.row.probs);
        assert!(
            worst < 1e-3,
            "head {} pos {}: {worst}",
            a.row.head,
            a.row.pos
        );
    }
}

/// `glassbox bench attention` on a small sequence: both kernels run and agree, and the memory
/// it reports is the naive kernel's score matrix against none for the flash prefill.
#[test]
fn the_attention_benchmark_compares_flash_with_naive() {
    use glassbox::bench::attention::{AttentionBenchOptions, attention};
    let opts = AttentionBenchOptions {
        seqs: vec![100],
        reps: 1,
        ..Default::default()
    };
    let report = attention(&context(), &opts).unwrap();
    let modes: Vec<&str> = report.cases.iter().map(|c| c.mode).collect();
    assert_eq!(modes, ["prefill", "decode"]);
    for case in &report.cases {
        assert!(
            case.flash.ms.is_some() && case.naive.ms.is_some(),
            "{case:?}"
        );
        assert!(case.naive.relative_difference.unwrap() < 1e-4, "{case:?}");
    }
    let prefill = &report.cases[0];
    assert_eq!(prefill.naive.scratch_bytes, 100 * 9 * 100 * 4);
    assert_eq!(prefill.flash.scratch_bytes, 0);
    assert!(prefill.naive.total_bytes > prefill.flash.total_bytes);
    assert!(report.round_trip_us > 0.0 && report.call_us > 0.0);
}

/// Sequences stepping together make one GPU call per layer: each gets the logits it gets
/// stepping alone (a 37-token prompt through the prefill kernel, a 20-token one through the
/// decode kernel, in the same submit).
#[test]
fn sequences_stepping_together_on_the_gpu_get_their_own_attention() {
    use glassbox::llm::model::SeqStep;
    use glassbox::llm::{AttentionKind, CaptureSpec};
    let greedy = &crate::llm::reference()["greedy"];
    let prompts = [
        crate::llm::ids(&greedy[0]["prompt_ids"]),
        crate::llm::ids(&greedy[2]["prompt_ids"]),
    ];
    let mut engine = crate::llm::engine(AttentionKind::Gpu);
    let alone: Vec<Vec<f32>> = prompts
        .iter()
        .map(|p| engine.logits(p, false).unwrap())
        .collect();
    let seqs: Vec<u64> = prompts.iter().map(|_| engine.cache.begin(&[]).0).collect();
    let steps: Vec<SeqStep<'_>> = seqs
        .iter()
        .zip(&prompts)
        .map(|(&seq, tokens)| SeqStep {
            seq,
            tokens,
            all_logits: false,
        })
        .collect();
    let together = engine.forward(&steps, &CaptureSpec::default()).unwrap();
    seqs.into_iter().for_each(|s| engine.cache.end(s));
    assert_eq!(
        engine.attention_name(),
        "gpu",
        "{:?}",
        engine.attention_notice()
    );
    for (a, b) in alone.iter().zip(&together.logits) {
        let worst = crate::common::largest_difference(a, b);
        assert!(worst < 1e-3, "largest logit difference {worst}");
    }
    assert_ne!(alone[0], alone[1]);
}

/// A device lost in the middle of a session: the step that meets it and every later one run on
/// the CPU, the engine says why, and generation goes on.
#[test]
fn a_lost_device_falls_back_to_the_cpu_and_generation_goes_on() {
    use glassbox::llm::{
        AttentionKind, CacheSize, CaptureSpec, Engine, EngineOptions, GenerateRequest,
        SamplingParams,
    };
    let ctx = context();
    let options = EngineOptions {
        attention: AttentionKind::Gpu,
        cache: CacheSize::Tokens(2048),
        gpu: Some(ctx.clone()),
        ..EngineOptions::default()
    };
    let mut engine = Engine::load(&crate::llm::smollm_path(), &options).unwrap();
    let request = GenerateRequest {
        prompt: crate::llm::ids(&crate::llm::reference()["greedy"][2]["prompt_ids"]),
        sampling: SamplingParams::greedy(),
        max_tokens: 6,
        stop: vec![],
        capture: CaptureSpec::default(),
    };
    let before = engine.generate(&request, None, &mut |_| {}).unwrap();
    assert_eq!(engine.attention_name(), "gpu");
    ctx.device.destroy();
    let after = engine.generate(&request, None, &mut |_| {}).unwrap();
    assert_eq!(after.ids.len(), before.ids.len());
    assert_eq!(engine.attention_name(), "cpu-fused (the GPU failed)");
    let notice = engine.attention_notice().unwrap_or_default();
    assert!(notice.contains("GPU attention stopped"), "{notice}");
}

/// `--attention auto` takes only a hardware GPU: without one (as on CI) the fused CPU attention
/// answers and the engine says why.
#[test]
fn auto_without_a_hardware_gpu_says_why_and_answers_on_the_cpu() {
    use glassbox::llm::AttentionKind;
    let mut engine = crate::llm::engine(AttentionKind::Auto);
    if GpuContext::new(AdapterChoice::HardwareOnly).is_ok() {
        assert_eq!(engine.attention_name(), "gpu");
        return;
    }
    assert_eq!(engine.attention_name(), "cpu-fused");
    let notice = engine.attention_notice().unwrap_or_default();
    assert!(notice.contains("no GPU adapter was found"), "{notice}");
    let prompt = crate::llm::ids(&crate::llm::reference()["greedy"][1]["prompt_ids"]);
    assert!(!engine.logits(&prompt, false).unwrap().is_empty());
}
