//! Our WGSL attention kernels on a real wgpu device (Mesa's lavapipe where there is no GPU),
//! held against an f64 reference on fresh random inputs each run (the seed is printed on
//! failure): MHA, GQA 3:1 (SmolLM2), GQA 7:1 (Qwen2.5), MQA; head dims 64 and 128; from one key
//! to 2,048, with lengths that are not multiples of the tile, range or block size; prompts from
//! scratch and after a cached prefix, and single-token decoding; every case through both
//! kernels.

use glassbox::gpu::attention::{AttnShape, FlashAttention, Kernel, PagedKv, SHADER};
use glassbox::gpu::{AdapterChoice, GpuContext};
use glassbox::rng::Rng;
use half::f16;

#[test]
fn every_shader_is_valid_wgsl() {
    let mut checked = 0;
    for entry in std::fs::read_dir("shaders").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
        // unpack2x16float needs half-float conversion in f32 code, which every adapter wgpu
        // runs on grants.
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32,
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
        checked += 1;
    }
    assert!(checked >= 1, "no WGSL found under shaders/");
    assert!(
        SHADER.contains("fn prefill"),
        "the kernels compiled in are the checked ones"
    );
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

    /// Softmax attention in f64 from the same f16 keys and values.
    fn reference(&self) -> Vec<f64> {
        let s = &self.shape;
        let (hd, group) = (s.head_dim, s.n_head / s.n_kv_head);
        let scale = 1.0 / (hd as f64).sqrt();
        let mut out = Vec::with_capacity(s.n_q * s.n_head * hd);
        for row in 0..s.n_q {
            for head in 0..s.n_head {
                let kvh = head / group;
                let q = &self.q[(row * s.n_head + head) * hd..][..hd];
                let n_keys = s.start + row + 1;
                let scores: Vec<f64> = (0..n_keys)
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
                let mut o = vec![0f64; hd];
                for (j, w) in weights.iter().enumerate() {
                    let v = &self.v[self.offset(j, kvh)..][..hd];
                    for (o, x) in o.iter_mut().zip(v) {
                        *o += w / total * x.to_f64();
                    }
                }
                out.extend(o);
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

fn kernels() -> FlashAttention {
    let ctx = GpuContext::new(AdapterChoice::AllowSoftware)
        .expect("a wgpu adapter (scripts/test installs Mesa's lavapipe)");
    FlashAttention::new(&ctx).expect("the kernels build")
}

#[test]
fn flash_kernels_match_an_f64_reference() {
    let kernels = kernels();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng::new(seed);
    let heads = [(4, 4), (9, 3), (14, 2), (8, 1)];
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
                for kernel in [Kernel::Prefill, Kernel::Decode] {
                    let got = kernels.run(&case.shape, &case.q, &kv, kernel).unwrap();
                    let err = relative_error(&got, &want);
                    assert!(
                        err < 1e-4,
                        "{kernel:?} {:?}: relative error {err:e} (seed {seed}, heads case {i})",
                        case.shape
                    );
                    worst = worst.max(err);
                }
            }
        }
    }
    eprintln!("worst relative error {worst:e}");
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
