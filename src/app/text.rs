//! Every string of the window, in Korean and English.

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Lang {
    Ko,
    En,
}

impl Lang {
    /// Korean when the system locale says so, else English.
    pub fn from_locale() -> Lang {
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .unwrap_or_default();
        if locale.starts_with("ko") {
            Lang::Ko
        } else {
            Lang::En
        }
    }

    pub fn concepts(self) -> crate::concepts::Lang {
        match self {
            Lang::Ko => crate::concepts::Lang::Ko,
            Lang::En => crate::concepts::Lang::En,
        }
    }
}

pub struct Strings {
    pub language: &'static str,
    pub library: &'static str,
    pub add_folder: &'static str,
    pub drop_here: &'static str,
    pub indexing: &'static str,
    pub cancel: &'static str,
    pub files: &'static str,
    pub chunks: &'static str,
    pub failed: &'static str,
    pub indexed: &'static str,
    pub ask_hint: &'static str,
    pub ask: &'static str,
    pub stop: &'static str,
    pub no_model: &'static str,
    pub sources: &'static str,
    pub no_results: &'static str,
    pub what_am_i_seeing: &'static str,
    pub concepts: &'static str,
    pub stage_columns: [&'static str; 6],
    pub in_prompt: &'static str,
    pub dropped: &'static str,
    pub below_cutoff: &'static str,
    pub shown: &'static str,
    pub nothing_yet: &'static str,
    pub attention_by_source: &'static str,
    pub rest_of_prompt: &'static str,
    pub answer_so_far: &'static str,
    pub timings: &'static str,
    /// retrieve, prompt, prefill, tokens, cached, decode
    pub timing_labels: [&'static str; 6],
}

const KO: Strings = Strings {
    language: "언어",
    library: "라이브러리",
    add_folder: "폴더 추가…",
    drop_here: "폴더나 파일을 창에 끌어다 놓으세요",
    indexing: "색인 중",
    cancel: "취소",
    files: "파일",
    chunks: "조각",
    failed: "실패",
    indexed: "색인됨",
    ask_hint: "문서에 대해 물어보세요",
    ask: "질문",
    stop: "멈춤",
    no_model: "모델이 없어 키워드 검색 결과를 보여 줍니다",
    sources: "출처",
    no_results: "찾은 문단이 없습니다",
    what_am_i_seeing: "무엇을 보고 있나요?",
    concepts: "개념",
    stage_columns: ["문단", "BM25", "벡터", "RRF", "재정렬", "결과"],
    in_prompt: "출처",
    dropped: "창 크기로 제외",
    below_cutoff: "순위 밖",
    shown: "결과에 표시",
    nothing_yet: "아직 질문이 없습니다",
    attention_by_source: "출처별 어텐션 (마지막 층, 헤드 평균, 답변 토큰 평균)",
    rest_of_prompt: "나머지 프롬프트",
    answer_so_far: "답변 자신",
    timings: "시간",
    timing_labels: ["검색", "프롬프트", "프리필", "토큰", "캐시", "디코드"],
};

const EN: Strings = Strings {
    language: "Language",
    library: "Library",
    add_folder: "Add folder…",
    drop_here: "Drop folders or files onto the window",
    indexing: "Indexing",
    cancel: "Cancel",
    files: "files",
    chunks: "chunks",
    failed: "failed",
    indexed: "indexed",
    ask_hint: "Ask about your documents",
    ask: "Ask",
    stop: "Stop",
    no_model: "No model yet: showing keyword search results",
    sources: "Sources",
    no_results: "No passage found",
    what_am_i_seeing: "What am I seeing?",
    concepts: "Concepts",
    stage_columns: ["Passage", "BM25", "Vector", "RRF", "Rerank", "Fate"],
    in_prompt: "source",
    dropped: "left out to fit",
    below_cutoff: "below cut-off",
    shown: "shown",
    nothing_yet: "No question yet",
    attention_by_source: "Attention by source (last layer, mean of heads and answer tokens)",
    rest_of_prompt: "rest of the prompt",
    answer_so_far: "the answer itself",
    timings: "Timings",
    timing_labels: [
        "retrieve", "prompt", "prefill", "tokens", "cached", "decode",
    ],
};

pub fn strings(lang: Lang) -> &'static Strings {
    match lang {
        Lang::Ko => &KO,
        Lang::En => &EN,
    }
}
