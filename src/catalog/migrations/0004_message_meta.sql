-- Per-answer metadata (model, speed, time to first token) as JSON, shown under each answer.
ALTER TABLE messages ADD COLUMN meta TEXT NOT NULL DEFAULT '{}';
