-- The catalog: the source of truth for everything Glassbox knows about the user's documents.

CREATE TABLE folders (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    is_file INTEGER NOT NULL DEFAULT 0,
    added_at INTEGER NOT NULL
);

CREATE TABLE documents (
    id INTEGER PRIMARY KEY,
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    path TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT,
    kind TEXT NOT NULL,
    encoding TEXT,
    status TEXT NOT NULL CHECK (status IN ('indexed', 'failed')),
    error TEXT,
    indexed_at INTEGER NOT NULL
);
CREATE INDEX documents_folder ON documents(folder_id);
CREATE INDEX documents_hash ON documents(hash);

CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    byte_start INTEGER NOT NULL,
    byte_end INTEGER NOT NULL,
    line_start INTEGER NOT NULL,
    line_end INTEGER NOT NULL,
    page INTEGER,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    UNIQUE (document_id, ordinal)
);

-- Documents whose chunks changed in SQLite but may not yet be committed to the tantivy index.
-- Written in the same transaction as the change, cleared after the tantivy commit, replayed on
-- open: this is what keeps the two stores in agreement across crashes.
CREATE TABLE index_journal (
    document_id INTEGER PRIMARY KEY
);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
