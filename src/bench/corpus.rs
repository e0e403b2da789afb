//! A deterministic generator of mixed Korean/English document folders for benchmarks and tests.

use std::io::Write;
use std::path::Path;

const KO_NOUNS: &[&str] = &[
    "검색",
    "문서",
    "도서관",
    "데이터",
    "모델",
    "학습",
    "문장",
    "단어",
    "의미",
    "질문",
    "답변",
    "출처",
    "색인",
    "벡터",
    "임베딩",
    "점수",
    "순위",
    "사용자",
    "파일",
    "폴더",
    "김치",
    "발효",
    "한글",
    "역사",
    "기술",
    "반도체",
    "공정",
    "배터리",
    "전기차",
    "태양광",
    "에너지",
    "기후",
    "바다",
    "도시",
    "지하철",
    "노선",
    "고양이",
    "행동",
    "수면",
    "건강",
    "커피",
    "원두",
    "우주",
    "로켓",
    "위성",
    "바둑",
    "음악",
    "판소리",
    "전통",
    "문화",
    "교육",
    "시험",
    "과거",
    "조선",
    "왕실",
    "법률",
    "경제",
    "시장",
    "가격",
    "정책",
    "정부",
    "연구",
    "실험",
    "결과",
    "분석",
    "통계",
    "그래프",
    "메모리",
    "캐시",
    "주의",
    "토큰",
];
const KO_PARTICLES: &[&str] = &[
    "은", "는", "이", "가", "을", "를", "에서", "으로", "의", "와", "도", "에", "",
];
const KO_ENDINGS: &[&str] = &[
    "중요하다.",
    "필요합니다.",
    "설명한다.",
    "바뀌었다.",
    "늘어난다.",
    "연결된다.",
    "보여준다.",
    "만든다.",
];
const EN_WORDS: &[&str] = &[
    "search",
    "document",
    "library",
    "index",
    "query",
    "answer",
    "source",
    "citation",
    "vector",
    "embedding",
    "score",
    "rank",
    "user",
    "file",
    "folder",
    "model",
    "training",
    "attention",
    "token",
    "memory",
    "cache",
    "battery",
    "energy",
    "climate",
    "ocean",
    "city",
    "subway",
    "network",
    "cat",
    "sleep",
    "coffee",
    "space",
    "rocket",
    "satellite",
    "music",
    "culture",
    "history",
    "market",
    "price",
    "policy",
    "research",
    "experiment",
    "result",
    "analysis",
    "statistics",
    "graph",
    "kernel",
    "shader",
    "compute",
    "latency",
    "throughput",
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "with",
    "for",
    "on",
    "that",
    "by",
    "from",
    "improves",
    "reduces",
    "explains",
    "shows",
];

pub use crate::rng::Rng;

pub fn korean_sentence(rng: &mut Rng) -> String {
    let words = 4 + rng.below(8);
    let mut s = String::new();
    for _ in 0..words {
        s.push_str(rng.pick(KO_NOUNS));
        s.push_str(rng.pick(KO_PARTICLES));
        s.push(' ');
    }
    s.push_str(rng.pick(KO_ENDINGS));
    s
}

pub fn english_sentence(rng: &mut Rng) -> String {
    let words = 6 + rng.below(12);
    let mut s: Vec<&str> = (0..words).map(|_| rng.pick(EN_WORDS)).collect();
    let first = s[0].to_owned();
    let capital = first[..1].to_uppercase() + &first[1..];
    s[0] = &capital;
    s.join(" ") + "."
}

fn paragraph(rng: &mut Rng, korean: bool) -> String {
    let n = 3 + rng.below(5);
    (0..n)
        .map(|_| {
            if korean {
                korean_sentence(rng)
            } else {
                english_sentence(rng)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A random query of one to three words from the corpus vocabulary, Korean or English.
pub fn query(rng: &mut Rng) -> String {
    let words = 1 + rng.below(3);
    let korean = rng.below(2) == 0;
    (0..words)
        .map(|_| {
            if korean {
                format!("{}{}", rng.pick(KO_NOUNS), rng.pick(KO_PARTICLES))
            } else {
                rng.pick(EN_WORDS).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn markdown(rng: &mut Rng, target: usize) -> String {
    let mut s = String::new();
    let mut section = 0;
    while s.len() < target {
        section += 1;
        let korean = rng.below(2) == 0;
        s.push_str(&format!(
            "{} Section {section} {}\n\n",
            if section == 1 { "#" } else { "##" },
            rng.pick(KO_NOUNS)
        ));
        s.push_str(&paragraph(rng, korean));
        s.push_str("\n\n");
    }
    s
}

fn html(rng: &mut Rng, target: usize) -> String {
    let mut s = String::from("<!doctype html><html><head><title>Generated</title></head><body>\n");
    while s.len() < target {
        let heading = rng.pick(EN_WORDS);
        let korean = rng.below(2) == 0;
        s.push_str(&format!(
            "<h2>{heading}</h2>\n<p>{}</p>\n",
            paragraph(rng, korean)
        ));
    }
    s + "</body></html>\n"
}

fn code(rng: &mut Rng, target: usize) -> String {
    let mut s = String::new();
    let mut n = 0;
    while s.len() < target {
        n += 1;
        s.push_str(&format!(
            "/// {}\nfn {}_{n}(input: &[u8]) -> usize {{\n    // {}\n    input.iter().filter(|b| **b > {}).count()\n}}\n\n",
            english_sentence(rng),
            rng.pick(EN_WORDS),
            korean_sentence(rng),
            rng.below(255)
        ));
    }
    s
}

/// Writes about `total_bytes` of mixed documents (md, html, txt, rs; Korean and English) under
/// `dir`, in files of 4–60 KB spread over subfolders. Returns the number of files.
pub fn generate(dir: &Path, total_bytes: usize, seed: u64) -> std::io::Result<usize> {
    let mut rng = Rng::new(seed);
    let mut written = 0;
    let mut files = 0;
    while written < total_bytes {
        let size = 4_000 + rng.below(56_000);
        let (ext, text) = match rng.below(4) {
            0 => ("md", markdown(&mut rng, size)),
            1 => ("html", html(&mut rng, size)),
            2 => (
                "txt",
                paragraph(&mut rng, true)
                    + "\n\n"
                    + &paragraph(&mut rng, false)
                    + "\n"
                    + &markdown(&mut rng, size),
            ),
            _ => ("rs", code(&mut rng, size)),
        };
        let sub = dir.join(format!("part{:02}", files % 16));
        std::fs::create_dir_all(&sub)?;
        let mut file = std::fs::File::create(sub.join(format!("doc{files:05}.{ext}")))?;
        file.write_all(text.as_bytes())?;
        written += text.len();
        files += 1;
    }
    Ok(files)
}
