-- Folders the window watches for changes (re-indexed automatically); on unless turned off.
ALTER TABLE folders ADD COLUMN watched INTEGER NOT NULL DEFAULT 1;
