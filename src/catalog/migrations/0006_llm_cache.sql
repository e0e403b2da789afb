-- The LLM cache: answers already generated, by the hash of everything that decides them (model
-- file, attention backend, prompt tokens, sampling, token budget). See answer::cache.
CREATE TABLE llm_cache (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    answer TEXT NOT NULL,
    ids TEXT NOT NULL,          -- the answer's token ids, JSON
    stop TEXT NOT NULL,         -- why generation stopped, JSON
    generation_s REAL NOT NULL, -- what generating it took (what a hit saves)
    hits INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    used_at INTEGER NOT NULL
);
