-- Chunk embeddings, per embedding model. Vectors are L2-normalised and stored as little-endian
-- f16 (dims = length / 2). Deleting a chunk deletes its vectors.
CREATE TABLE embeddings (
    model TEXT NOT NULL,
    chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, chunk_id)
) WITHOUT ROWID;
CREATE INDEX embeddings_chunk ON embeddings(chunk_id);
