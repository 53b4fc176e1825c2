//! A seeded media mutator: damaged copies of the valid fixtures for the fuzzing runs (the
//! suite's `fuzz_media` and `cargo bench --bench fuzz`). Every file comes from the run's seed
//! and its index alone (splitmix64, no crate), so a seed and a count name a corpus and a
//! file's name says how to make it again: `INDEX-FILESEED-KIND-DETAIL-FIXTURE.EXT`.
//!
//! Kinds, taken in turn: bit flips (a few to a few dozen bits, half of them in the first
//! 64 KiB where the headers are), byte runs (0x00, 0xFF or one random byte over 1 to 4096
//! bytes), truncations, ISO BMFF box edits (a box found by walking the tree, its 32-bit size
//! set to 0, 1, 7, 0xFFFFFFFF, half, double, ±1, or its type changed), Matroska element
//! size edits (Segment, Cluster, Tracks, TrackEntry, CodecPrivate, SimpleBlock or
//! BlockGroup: unknown size, an 8-byte size with a huge value, zero or a random value) and
//! splices (the head of one fixture, the tail of another).

#![allow(dead_code)] // the bench uses a part of it, the suite another

use std::path::Path;

/// The corpus both runs use unless told otherwise (`FUZZ_SEED`).
pub const DEFAULT_SEED: u64 = 20_261_207;

/// Fixtures too long or too large to be a second's work each.
const SKIPPED: &[&str] = &[
    "long_720p",
    "split_4min",
    "h264_aac_1080p",
    "hls_source_1080p",
    "loudness_quiet",
    "loudness_loud",
    "loudness_steps",
];
const LARGEST_SEED_BYTES: u64 = 1_500_000;

/// The window bit flips and byte runs favour: where containers keep their headers.
const HEAD_BYTES: usize = 64 * 1024;

/// splitmix64: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A position in `len` bytes, half the time inside the first [`HEAD_BYTES`].
    fn position(&mut self, len: usize) -> usize {
        if self.coin() {
            self.below(len.min(HEAD_BYTES))
        } else {
            self.below(len)
        }
    }
}

/// A valid fixture the mutants start from.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The file name without its extension.
    pub stem: String,
    pub ext: String,
    pub bytes: Vec<u8>,
}

impl Seed {
    fn family(&self) -> Family {
        match self.ext.as_str() {
            "mp4" | "mov" | "m4a" => Family::Bmff,
            "mkv" | "webm" => Family::Matroska,
            _ => Family::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Bmff,
    Matroska,
    Other,
}

/// The valid fixtures in `dir` a job turns into a second's work, sorted by name.
pub fn seeds(dir: &Path) -> Vec<Seed> {
    let mut seeds: Vec<Seed> = std::fs::read_dir(dir)
        .expect("the valid fixtures")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let stem = path.file_stem()?.to_str()?.to_string();
            let ext = path.extension()?.to_str()?.to_string();
            let small = path.metadata().ok()?.len() <= LARGEST_SEED_BYTES;
            (small && !SKIPPED.contains(&stem.as_str()) && !stem.starts_with('.')).then(|| {
                let bytes = std::fs::read(&path).expect("reading a fixture");
                Seed { stem, ext, bytes }
            })
        })
        .collect();
    seeds.sort_by(|a, b| (&a.stem, &a.ext).cmp(&(&b.stem, &b.ext)));
    assert!(
        seeds.iter().any(|s| s.family() == Family::Bmff)
            && seeds.iter().any(|s| s.family() == Family::Matroska),
        "no MP4 or no Matroska fixture in {}",
        dir.display()
    );
    seeds
}

/// How a mutant was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    BitFlips,
    ByteRun,
    Truncate,
    BoxEdit,
    EbmlEdit,
    Splice,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::BitFlips,
        Kind::ByteRun,
        Kind::Truncate,
        Kind::BoxEdit,
        Kind::EbmlEdit,
        Kind::Splice,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::BitFlips => "bits",
            Kind::ByteRun => "run",
            Kind::Truncate => "cut",
            Kind::BoxEdit => "box",
            Kind::EbmlEdit => "ebml",
            Kind::Splice => "splice",
        }
    }
}

/// One damaged file.
#[derive(Debug, Clone)]
pub struct Mutant {
    pub index: usize,
    /// The seed that made it (with its index, all it takes to make it again).
    pub seed: u64,
    pub kind: Kind,
    /// `INDEX-FILESEED-KIND-DETAIL-FIXTURE.EXT`.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The first `count` files of the corpus `run_seed` names.
pub fn corpus(seeds: &[Seed], run_seed: u64, count: usize) -> Vec<Mutant> {
    let mut rng = Rng::new(run_seed);
    (0..count)
        .map(|index| mutant(seeds, index, rng.next_u64()))
        .collect()
}

/// File `index` of a corpus, made from its own seed: kinds go in turn, so every run of six
/// or more files has each.
pub fn mutant(seeds: &[Seed], index: usize, seed: u64) -> Mutant {
    let kind = Kind::ALL[index % Kind::ALL.len()];
    let mut rng = Rng::new(seed);
    let (source, mut bytes, mut detail) = match kind {
        Kind::BitFlips => {
            let s = rng.pick(seeds);
            let (b, d) = bit_flips(&s.bytes, &mut rng);
            (s, b, d)
        }
        Kind::ByteRun => {
            let s = rng.pick(seeds);
            let (b, d) = byte_run(&s.bytes, &mut rng);
            (s, b, d)
        }
        Kind::Truncate => {
            let s = rng.pick(seeds);
            let (b, d) = truncate(&s.bytes, &mut rng);
            (s, b, d)
        }
        Kind::BoxEdit => {
            let s = pick_family(seeds, Family::Bmff, &mut rng);
            let (b, d) = box_edit(&s.bytes, &mut rng);
            (s, b, d)
        }
        Kind::EbmlEdit => {
            let s = pick_family(seeds, Family::Matroska, &mut rng);
            let (b, d) = ebml_edit(&s.bytes, &mut rng);
            (s, b, d)
        }
        Kind::Splice => {
            let head = rng.pick(seeds);
            let same: Vec<&Seed> = seeds
                .iter()
                .filter(|t| t.family() == head.family() && t.stem != head.stem)
                .collect();
            let tail = if rng.coin() && !same.is_empty() {
                *rng.pick(&same)
            } else {
                rng.pick(seeds)
            };
            let (b, d) = splice(&head.bytes, tail, &mut rng);
            (head, b, d)
        }
    };
    // Every mutant differs from its fixture: an edit that changed nothing gets a bit flip.
    if bytes == source.bytes && !bytes.is_empty() {
        let at = rng.below(bytes.len());
        bytes[at] ^= 1;
        detail.push_str("-flip");
    }
    Mutant {
        index,
        seed,
        kind,
        name: format!(
            "{index:04}-{seed:016x}-{}-{detail}-{}.{}",
            kind.name(),
            source.stem,
            source.ext
        ),
        bytes,
    }
}

fn pick_family<'a>(seeds: &'a [Seed], family: Family, rng: &mut Rng) -> &'a Seed {
    let of: Vec<&Seed> = seeds.iter().filter(|s| s.family() == family).collect();
    of[rng.below(of.len())]
}

fn bit_flips(src: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    let mut out = src.to_vec();
    let n = 1 + rng.below(40);
    for _ in 0..n {
        let at = rng.position(out.len());
        out[at] ^= 1 << rng.below(8);
    }
    (out, format!("{n}"))
}

fn byte_run(src: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    let mut out = src.to_vec();
    let len = (1usize << rng.below(13)).min(out.len());
    let at = rng.position(out.len() - len + 1);
    let (value, name) = match rng.below(3) {
        0 => (0x00, "00".to_string()),
        1 => (0xFF, "ff".to_string()),
        _ => {
            let b = rng.byte();
            (b, format!("{b:02x}"))
        }
    };
    out[at..at + len].fill(value);
    (out, format!("{len}x{name}at{at}"))
}

fn truncate(src: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    // A quarter cut inside the first 4 KiB (the headers themselves), the rest anywhere.
    let at = if rng.below(4) == 0 {
        rng.below(src.len().min(4096))
    } else {
        rng.below(src.len())
    };
    (src[..at].to_vec(), format!("at{at}"))
}

fn splice(head: &[u8], tail: &Seed, rng: &mut Rng) -> (Vec<u8>, String) {
    let cut = |len: usize, rng: &mut Rng| len / 10 + rng.below(len * 8 / 10 + 1);
    let (a, b) = (cut(head.len(), rng), cut(tail.bytes.len(), rng));
    let mut out = head[..a].to_vec();
    out.extend_from_slice(&tail.bytes[b..]);
    (out, format!("at{a}-{}from{b}", sanitise(&tail.stem)))
}

/// Letters and digits of a name, the rest as `_` (object keys and file names take it).
fn sanitise(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

// --- ISO BMFF (MP4, MOV, M4A) ----------------------------------------------------------

/// One box of an ISO BMFF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxAt {
    pub offset: usize,
    pub size: u64,
    pub fourcc: [u8; 4],
    pub depth: usize,
}

impl BoxAt {
    pub fn name(&self) -> String {
        sanitise(&String::from_utf8_lossy(&self.fourcc))
    }
}

/// Boxes made of boxes, and how many bytes of their own come before the first child.
const BOX_CONTAINERS: &[(&[u8; 4], usize)] = &[
    (b"moov", 0),
    (b"trak", 0),
    (b"mdia", 0),
    (b"minf", 0),
    (b"stbl", 0),
    (b"edts", 0),
    (b"dinf", 0),
    (b"udta", 0),
    (b"mvex", 0),
    (b"moof", 0),
    (b"traf", 0),
    // Sample descriptions: a version, flags and count, then the sample entries, whose own
    // fields come before their codec configuration boxes (avcC, hvcC, esds…).
    (b"stsd", 8),
    (b"avc1", 78),
    (b"hvc1", 78),
    (b"hev1", 78),
    (b"mp4v", 78),
    (b"mp4a", 28),
];

/// Every box of the tree, in file order: the top level and the containers' children.
pub fn boxes(data: &[u8]) -> Vec<BoxAt> {
    let mut out = Vec::new();
    walk_boxes(data, 0, data.len(), 0, &mut out);
    out
}

fn walk_boxes(data: &[u8], start: usize, end: usize, depth: usize, out: &mut Vec<BoxAt>) {
    let mut at = start;
    while at + 8 <= end {
        let size32 = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let fourcc = [data[at + 4], data[at + 5], data[at + 6], data[at + 7]];
        let (size, header) = match size32 {
            0 => ((end - at) as u64, 8),
            1 if at + 16 <= end => {
                let mut large = [0u8; 8];
                large.copy_from_slice(&data[at + 8..at + 16]);
                (u64::from_be_bytes(large), 16)
            }
            1 => break,
            s => (u64::from(s), 8),
        };
        if size < header as u64 || size > (end - at) as u64 {
            break;
        }
        out.push(BoxAt {
            offset: at,
            size,
            fourcc,
            depth,
        });
        let size = size as usize;
        if depth < 12
            && let Some((_, own)) = BOX_CONTAINERS.iter().find(|(c, _)| **c == fourcc)
            && header + own <= size
        {
            walk_boxes(data, at + header + own, at + size, depth + 1, out);
        }
        at += size;
    }
}

pub fn box_edit(src: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    let found = boxes(src);
    let mut out = src.to_vec();
    let Some(b) = (!found.is_empty()).then(|| rng.pick(&found).clone()) else {
        return bit_flips(src, rng);
    };
    let at = b.offset;
    let old = u32::from_be_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]]);
    let (size, op) = match rng.below(9) {
        0 => (0, "size0".to_string()),
        1 => (1, "size1".to_string()),
        2 => (7, "size7".to_string()),
        3 => (u32::MAX, "sizemax".to_string()),
        4 => (old / 2, "half".to_string()),
        5 => (old.saturating_mul(2), "double".to_string()),
        6 => (old.wrapping_add(1), "plus1".to_string()),
        7 => (old.wrapping_sub(1), "minus1".to_string()),
        _ => {
            const TYPES: &[&[u8; 4]] = &[
                b"free",
                b"mdat",
                b"moov",
                b"trak",
                b"stsz",
                b"stco",
                b"co64",
                b"uuid",
                b"meta",
                b"\0\0\0\0",
            ];
            let to = if rng.below(4) == 0 {
                [rng.byte(), rng.byte(), rng.byte(), rng.byte()]
            } else {
                **rng.pick(TYPES)
            };
            out[at + 4..at + 8].copy_from_slice(&to);
            let name = sanitise(&String::from_utf8_lossy(&to));
            return (out, format!("{}-type{name}", b.name()));
        }
    };
    out[at..at + 4].copy_from_slice(&size.to_be_bytes());
    (out, format!("{}-{op}", b.name()))
}

// --- Matroska and WebM (EBML) ----------------------------------------------------------

pub const SEGMENT: u32 = 0x1853_8067;
pub const CLUSTER: u32 = 0x1F43_B675;
pub const TRACKS: u32 = 0x1654_AE6B;
pub const TRACK_ENTRY: u32 = 0xAE;
pub const CODEC_PRIVATE: u32 = 0x63A2;
pub const SIMPLE_BLOCK: u32 = 0xA3;
pub const BLOCK_GROUP: u32 = 0xA0;

/// The elements whose sizes are edited, and their names.
const EBML_TARGETS: &[(u32, &str)] = &[
    (SEGMENT, "segment"),
    (CLUSTER, "cluster"),
    (TRACKS, "tracks"),
    (TRACK_ENTRY, "trackentry"),
    (CODEC_PRIVATE, "codecprivate"),
    (SIMPLE_BLOCK, "simpleblock"),
    (BLOCK_GROUP, "blockgroup"),
];

/// Elements made of elements that the walk enters.
const EBML_MASTERS: &[u32] = &[SEGMENT, CLUSTER, TRACKS, TRACK_ENTRY, BLOCK_GROUP];

/// One element of a Matroska file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub id: u32,
    pub offset: usize,
    /// Where its size field starts, and its length in bytes.
    pub size_at: usize,
    pub size_len: usize,
    /// None: unknown size.
    pub size: Option<u64>,
}

/// A variable-length integer's length (1 to `max` bytes) from its first byte.
fn vint_len(first: u8, max: u32) -> Option<usize> {
    let n = first.leading_zeros() + 1;
    (n <= max).then_some(n as usize)
}

/// The elements of the tree the walk enters, in file order.
pub fn elements(data: &[u8]) -> Vec<Element> {
    let mut out = Vec::new();
    walk_elements(data, 0, data.len(), 0, &mut out);
    out
}

fn walk_elements(data: &[u8], start: usize, end: usize, depth: usize, out: &mut Vec<Element>) {
    let mut at = start;
    while at < end {
        let Some(id_len) = vint_len(data[at], 4) else {
            break;
        };
        let size_at = at + id_len;
        if size_at >= end {
            break;
        }
        let id = data[at..size_at]
            .iter()
            .fold(0u32, |v, b| (v << 8) | u32::from(*b));
        let Some(size_len) = vint_len(data[size_at], 8) else {
            break;
        };
        let data_at = size_at + size_len;
        if data_at > end {
            break;
        }
        let raw = data[size_at..data_at]
            .iter()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b));
        let value_bits = 7 * size_len as u32;
        let value = raw & ((1u64 << value_bits) - 1);
        let unknown = value == (1u64 << value_bits) - 1;
        let data_end = if unknown {
            end
        } else if value <= (end - data_at) as u64 {
            data_at + value as usize
        } else {
            break;
        };
        out.push(Element {
            id,
            offset: at,
            size_at,
            size_len,
            size: (!unknown).then_some(value),
        });
        if depth < 8 && EBML_MASTERS.contains(&id) {
            walk_elements(data, data_at, data_end, depth + 1, out);
        }
        at = data_end;
    }
}

/// `value` as a size field of `len` bytes (the length marker and the value's bits).
pub fn size_field(len: usize, value: u64) -> Vec<u8> {
    let bits = 7 * len as u32;
    let v = (value & ((1u64 << bits) - 1)) | (1u64 << bits);
    v.to_be_bytes()[8 - len..].to_vec()
}

fn ebml_edit(src: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    let found: Vec<(Element, &str)> = elements(src)
        .into_iter()
        .filter_map(|e| {
            let name = EBML_TARGETS.iter().find(|(id, _)| *id == e.id)?.1;
            Some((e, name))
        })
        .collect();
    // Blocks outnumber everything: pick the element's kind first, then one of that kind.
    let mut kinds: Vec<&str> = found.iter().map(|(_, n)| *n).collect();
    kinds.sort_unstable();
    kinds.dedup();
    if kinds.is_empty() {
        return bit_flips(src, rng);
    }
    let kind = *rng.pick(&kinds);
    let of: Vec<&Element> = found
        .iter()
        .filter(|(_, n)| *n == kind)
        .map(|(e, _)| e)
        .collect();
    let e = (*rng.pick(&of)).clone();
    let len = e.size_len;
    let (field, op) = match rng.below(5) {
        0 => (size_field(len, u64::MAX), "unknown"),
        // The one-byte unknown size (0xFF) in place of a longer field.
        1 => (vec![0xFF], "unknown1"),
        // An 8-byte size (marker 0x01) far past the end of the file.
        2 => {
            let huge = (1u64 << 40) + (rng.next_u64() >> 16);
            (size_field(8, huge), "huge8")
        }
        3 => (size_field(len, 0), "zero"),
        _ => (size_field(len, rng.next_u64()), "random"),
    };
    let mut out = src.to_vec();
    out.splice(e.size_at..e.size_at + len, field);
    (out, format!("{kind}-{op}"))
}
