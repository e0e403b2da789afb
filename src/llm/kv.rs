//! The KV cache, PagedAttention style: keys and values live in fixed-size blocks from one pool,
//! each sequence has a block table, and sequences that start with the same tokens share the
//! blocks of that prefix (reference-counted; a shared block is copied before it is written).
//! A freed block keeps its contents and hash until the pool needs it again, so a second
//! question over the same system prompt and sources finds its prefix already computed.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use half::f16;
use serde::Serialize;

use super::error::{LlmError, LlmResult};

pub type SeqId = u64;

/// Shape of the cached keys and values.
#[derive(Clone, Copy, Debug)]
pub struct KvShape {
    pub n_layer: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub block_size: usize,
}

impl KvShape {
    /// Bytes one block takes across all layers (keys and values, f16).
    pub fn block_bytes(&self) -> usize {
        2 * self.n_layer * self.block_len() * std::mem::size_of::<f16>()
    }

    /// Values in one block of one layer (of keys, or of values).
    pub fn block_len(&self) -> usize {
        self.n_kv_head * self.block_size * self.head_dim
    }
}

/// Keys and values of one layer, laid out `[block][kv_head][slot][head_dim]`.
pub struct LayerKv<'a> {
    pub k: &'a [f16],
    pub v: &'a [f16],
    pub shape: KvShape,
    pub layer: usize,
    /// Per block: a number that changes whenever the block's keys or values do, so that a copy
    /// kept elsewhere (the GPU's) knows which blocks to send again.
    pub versions: &'a [u64],
}

impl LayerKv<'_> {
    /// Offset of (block, head, slot) in `k` and `v`.
    #[inline]
    pub fn offset(&self, block: u32, head: usize, slot: usize) -> usize {
        let s = &self.shape;
        ((block as usize * s.n_kv_head + head) * s.block_size + slot) * s.head_dim
    }
}

#[derive(Clone, Default)]
struct BlockMeta {
    refs: u32,
    /// Chain hash of the tokens up to and including this block, once it is full.
    hash: Option<u64>,
    tokens: Vec<u32>,
}

struct Seq {
    table: Vec<u32>,
    tokens: Vec<u32>,
    hashes: Vec<u64>,
}

/// What the engine panel shows.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CacheStats {
    pub block_size: usize,
    pub block_bytes: usize,
    pub total: usize,
    pub used: usize,
    pub shared: usize,
    pub free: usize,
    /// Free blocks that still hold a reusable prefix.
    pub cached: usize,
    /// Prompt tokens served from the cache instead of being computed, since the start.
    pub prefix_hit_tokens: usize,
    pub sequences: Vec<SeqTable>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeqTable {
    pub id: SeqId,
    pub tokens: usize,
    pub blocks: Vec<u32>,
}

pub struct KvCache {
    shape: KvShape,
    capacity: usize,
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
    /// Per layer and block: when it was last written (see `LayerKv::versions`).
    versions: Vec<Vec<u64>>,
    clock: u64,
    meta: Vec<BlockMeta>,
    /// Blocks nobody holds, oldest first; they are recycled in this order.
    free: VecDeque<u32>,
    by_hash: HashMap<u64, u32>,
    seqs: HashMap<SeqId, Seq>,
    next_seq: SeqId,
    prefix_hit_tokens: usize,
}

impl KvCache {
    /// A pool of `capacity` blocks. Storage grows as blocks are first used.
    pub fn new(shape: KvShape, capacity: usize) -> Self {
        Self {
            shape,
            capacity,
            k: vec![Vec::new(); shape.n_layer],
            v: vec![Vec::new(); shape.n_layer],
            versions: vec![Vec::new(); shape.n_layer],
            clock: 0,
            meta: Vec::new(),
            free: VecDeque::new(),
            by_hash: HashMap::new(),
            seqs: HashMap::new(),
            next_seq: 1,
            prefix_hit_tokens: 0,
        }
    }

    /// A pool holding at least `tokens` tokens.
    pub fn with_tokens(shape: KvShape, tokens: usize) -> Self {
        Self::new(shape, tokens.div_ceil(shape.block_size))
    }

    pub fn shape(&self) -> KvShape {
        self.shape
    }

    pub fn capacity_tokens(&self) -> usize {
        self.capacity * self.shape.block_size
    }

    /// Start a sequence for `prompt`, sharing the longest cached run of its full blocks. The last
    /// prompt token is never taken from the cache: its logits are needed. Returns the sequence and
    /// how many prompt tokens are already in the cache.
    pub fn begin(&mut self, prompt: &[u32]) -> (SeqId, usize) {
        let bs = self.shape.block_size;
        let mut seq = Seq {
            table: Vec::new(),
            tokens: Vec::new(),
            hashes: Vec::new(),
        };
        let reusable = prompt.len().saturating_sub(1) / bs;
        let mut parent = 0u64;
        for chunk in prompt.chunks_exact(bs).take(reusable) {
            let h = chain_hash(parent, chunk);
            let Some(&block) = self.by_hash.get(&h) else {
                break;
            };
            if self.meta[block as usize].tokens != chunk {
                break;
            }
            self.retain(block);
            seq.table.push(block);
            seq.tokens.extend_from_slice(chunk);
            seq.hashes.push(h);
            parent = h;
        }
        let cached = seq.tokens.len();
        self.prefix_hit_tokens += cached;
        let id = self.next_seq;
        self.next_seq += 1;
        self.seqs.insert(id, seq);
        (id, cached)
    }

    /// A new sequence sharing all of `seq`'s blocks (copy-on-write), for example to regenerate.
    pub fn fork(&mut self, seq: SeqId) -> SeqId {
        let (table, tokens, hashes) = match self.seqs.get(&seq) {
            Some(s) => (s.table.clone(), s.tokens.clone(), s.hashes.clone()),
            None => Default::default(),
        };
        table.iter().for_each(|&b| self.retain(b));
        let id = self.next_seq;
        self.next_seq += 1;
        self.seqs.insert(
            id,
            Seq {
                table,
                tokens,
                hashes,
            },
        );
        id
    }

    pub fn seq_len(&self, seq: SeqId) -> usize {
        self.seqs.get(&seq).map_or(0, |s| s.tokens.len())
    }

    pub fn table(&self, seq: SeqId) -> &[u32] {
        self.seqs.get(&seq).map_or(&[], |s| s.table.as_slice())
    }

    /// Make room for `n` more tokens of `seq`: all or nothing.
    pub fn reserve(&mut self, seq: SeqId, n: usize) -> LlmResult<()> {
        let bs = self.shape.block_size;
        let (len, have, last_shared) = {
            let s = &self.seqs[&seq];
            let last = s.table.last().map(|&b| self.meta[b as usize].refs > 1);
            (s.tokens.len(), s.table.len(), last.unwrap_or(false))
        };
        let cow = last_shared && !len.is_multiple_of(bs);
        let needed = (len + n).div_ceil(bs).saturating_sub(have) + cow as usize;
        let available = self.capacity - self.meta.len() + self.free.len();
        if needed > available {
            return Err(LlmError::CacheFull {
                needed,
                free: available,
                total: self.capacity,
            });
        }
        if cow {
            let old = self.seqs[&seq].table[have - 1];
            let new = self.allocate();
            self.copy_block(old, new);
            self.release(old);
            *self
                .seqs
                .get_mut(&seq)
                .and_then(|s| s.table.last_mut())
                .expect("has blocks") = new;
        }
        for _ in 0..needed - cow as usize {
            let b = self.allocate();
            self.seqs.get_mut(&seq).expect("sequence").table.push(b);
        }
        Ok(())
    }

    /// Record that `tokens` were appended (their K/V written); full blocks become shareable.
    pub fn commit(&mut self, seq: SeqId, tokens: &[u32]) {
        let bs = self.shape.block_size;
        let Some(s) = self.seqs.get_mut(&seq) else {
            return;
        };
        s.tokens.extend_from_slice(tokens);
        let mut fresh = Vec::new();
        while s.hashes.len() < s.tokens.len() / bs {
            let i = s.hashes.len();
            let chunk = &s.tokens[i * bs..(i + 1) * bs];
            let h = chain_hash(s.hashes.last().copied().unwrap_or(0), chunk);
            s.hashes.push(h);
            fresh.push((s.table[i], h, chunk.to_vec()));
        }
        for (block, h, chunk) in fresh {
            if self.by_hash.contains_key(&h) {
                continue;
            }
            let m = &mut self.meta[block as usize];
            if m.hash.is_none() {
                m.hash = Some(h);
                m.tokens = chunk;
                self.by_hash.insert(h, block);
            }
        }
    }

    /// Where position `pos` of `seq` lives: (block, slot).
    pub fn slot(&self, seq: SeqId, pos: usize) -> (u32, usize) {
        let bs = self.shape.block_size;
        (self.seqs[&seq].table[pos / bs], pos % bs)
    }

    /// Store one token's keys and values (`kv_dim` each) for `layer`.
    pub fn write(&mut self, layer: usize, (block, slot): (u32, usize), k: &[f32], v: &[f32]) {
        let hd = self.shape.head_dim;
        self.clock += 1;
        self.versions[layer][block as usize] = self.clock;
        let view = LayerKv {
            k: &[],
            v: &[],
            shape: self.shape,
            layer,
            versions: &[],
        };
        for h in 0..self.shape.n_kv_head {
            let at = view.offset(block, h, slot);
            let src = h * hd..(h + 1) * hd;
            for (dst, &x) in self.k[layer][at..at + hd].iter_mut().zip(&k[src.clone()]) {
                *dst = f16::from_f32(x);
            }
            for (dst, &x) in self.v[layer][at..at + hd].iter_mut().zip(&v[src]) {
                *dst = f16::from_f32(x);
            }
        }
    }

    pub fn layer(&self, layer: usize) -> LayerKv<'_> {
        LayerKv {
            k: &self.k[layer],
            v: &self.v[layer],
            shape: self.shape,
            layer,
            versions: &self.versions[layer],
        }
    }

    /// End a sequence: its blocks go back to the pool (keeping their contents for prefix hits).
    pub fn end(&mut self, seq: SeqId) {
        if let Some(s) = self.seqs.remove(&seq) {
            s.table.iter().rev().for_each(|&b| self.release(b));
        }
    }

    pub fn stats(&self) -> CacheStats {
        let used = self.meta.iter().filter(|m| m.refs > 0).count();
        let mut sequences: Vec<SeqTable> = self
            .seqs
            .iter()
            .map(|(&id, s)| SeqTable {
                id,
                tokens: s.tokens.len(),
                blocks: s.table.clone(),
            })
            .collect();
        sequences.sort_by_key(|s| s.id);
        CacheStats {
            block_size: self.shape.block_size,
            block_bytes: self.shape.block_bytes(),
            total: self.capacity,
            used,
            shared: self.meta.iter().filter(|m| m.refs > 1).count(),
            free: self.capacity - used,
            cached: self
                .free
                .iter()
                .filter(|&&b| self.meta[b as usize].hash.is_some())
                .count(),
            prefix_hit_tokens: self.prefix_hit_tokens,
            sequences,
        }
    }

    fn retain(&mut self, block: u32) {
        let m = &mut self.meta[block as usize];
        if m.refs == 0 {
            self.free.retain(|&b| b != block);
        }
        m.refs += 1;
    }

    fn release(&mut self, block: u32) {
        let m = &mut self.meta[block as usize];
        m.refs -= 1;
        if m.refs == 0 {
            self.free.push_back(block);
        }
    }

    /// A block for writing: a never-used one while the pool has them, else the oldest free one
    /// (forgetting the prefix it held). Callers check availability first.
    fn allocate(&mut self) -> u32 {
        let block = if self.meta.len() < self.capacity {
            let len = self.shape.block_len();
            let grown = (self.meta.len() + 1) * len;
            for l in 0..self.shape.n_layer {
                self.k[l].resize(grown, f16::ZERO);
                self.v[l].resize(grown, f16::ZERO);
                self.versions[l].push(0);
            }
            self.meta.push(BlockMeta::default());
            (self.meta.len() - 1) as u32
        } else {
            let b = self.free.pop_front().expect("availability checked");
            if let Some(h) = self.meta[b as usize].hash.take()
                && self.by_hash.get(&h) == Some(&b)
            {
                self.by_hash.remove(&h);
            }
            b
        };
        self.meta[block as usize].refs = 1;
        self.meta[block as usize].tokens.clear();
        block
    }

    fn copy_block(&mut self, from: u32, to: u32) {
        let len = self.shape.block_len();
        let (f, t) = (from as usize * len, to as usize * len);
        self.clock += 1;
        for l in 0..self.shape.n_layer {
            self.k[l].copy_within(f..f + len, t);
            self.v[l].copy_within(f..f + len, t);
            self.versions[l][to as usize] = self.clock;
        }
    }
}

fn chain_hash(parent: u64, tokens: &[u32]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    parent.hash(&mut h);
    tokens.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> KvShape {
        KvShape {
            n_layer: 2,
            n_kv_head: 1,
            head_dim: 4,
            block_size: 4,
        }
    }

    /// Fill `n` positions of `seq` with keys equal to the token id, and commit the tokens.
    fn append(cache: &mut KvCache, seq: SeqId, tokens: &[u32]) {
        cache.reserve(seq, tokens.len()).unwrap();
        let start = cache.seq_len(seq);
        for (i, &t) in tokens.iter().enumerate() {
            let kv = [t as f32; 4];
            for l in 0..2 {
                cache.write(l, cache.slot(seq, start + i), &kv, &kv);
            }
        }
        cache.commit(seq, tokens);
    }

    fn key_at(cache: &KvCache, seq: SeqId, pos: usize) -> f32 {
        let (block, slot) = cache.slot(seq, pos);
        let layer = cache.layer(1);
        layer.k[layer.offset(block, 0, slot)].to_f32()
    }

    #[test]
    fn a_second_sequence_shares_the_full_blocks_of_a_common_prefix() {
        let mut cache = KvCache::new(shape(), 8);
        let prompt: Vec<u32> = (1..=10).collect();
        let (a, cached) = cache.begin(&prompt);
        assert_eq!(cached, 0);
        append(&mut cache, a, &prompt);
        // Same first 9 tokens: two full blocks (8 tokens) are reused, never the last token.
        let mut other = prompt[..9].to_vec();
        other.push(99);
        let (b, cached) = cache.begin(&other);
        assert_eq!(cached, 8);
        assert_eq!(cache.table(b), &cache.table(a)[..2]);
        let s = cache.stats();
        assert_eq!((s.used, s.shared, s.prefix_hit_tokens), (3, 2, 8));
        append(&mut cache, b, &other[8..]);
        assert_eq!(key_at(&cache, b, 9), 99.0);
        assert_eq!(
            key_at(&cache, a, 9),
            10.0,
            "the first sequence is untouched"
        );
        // Ending both frees everything, but the blocks keep their prefix for later hits.
        cache.end(a);
        cache.end(b);
        let s = cache.stats();
        assert_eq!((s.used, s.free), (0, 8));
        assert!(s.cached >= 2);
        let (c, cached) = cache.begin(&prompt);
        assert_eq!(cached, 8);
        assert_eq!(key_at(&cache, c, 7), 8.0);
    }

    #[test]
    fn a_fork_copies_its_shared_partial_block_before_writing() {
        let mut cache = KvCache::new(shape(), 8);
        let (a, _) = cache.begin(&[]);
        append(&mut cache, a, &[1, 2, 3, 4, 5, 6]);
        let b = cache.fork(a);
        assert_eq!(cache.stats().shared, 2);
        append(&mut cache, b, &[70]);
        append(&mut cache, a, &[7]);
        assert_ne!(
            cache.table(a)[1],
            cache.table(b)[1],
            "the partial block was copied"
        );
        assert_eq!(
            cache.table(a)[0],
            cache.table(b)[0],
            "the full block is still shared"
        );
        assert_eq!((key_at(&cache, a, 6), key_at(&cache, b, 6)), (7.0, 70.0));
        assert_eq!(
            key_at(&cache, b, 5),
            6.0,
            "the copy kept the earlier tokens"
        );
    }

    #[test]
    fn a_request_that_cannot_fit_fails_cleanly_and_takes_nothing() {
        let mut cache = KvCache::new(shape(), 3);
        let (a, _) = cache.begin(&[]);
        append(&mut cache, a, &[1, 2, 3, 4, 5]);
        let (b, _) = cache.begin(&[]);
        let err = cache.reserve(b, 9).unwrap_err();
        assert!(
            matches!(
                err,
                LlmError::CacheFull {
                    needed: 3,
                    free: 1,
                    total: 3
                }
            ),
            "{err}"
        );
        assert!(cache.table(b).is_empty());
        assert_eq!(cache.stats().used, 2);
        cache.end(a);
        cache.reserve(b, 9).unwrap();
        assert_eq!(cache.stats().used, 3);
    }
}
