-- labels.db schema, version 2 (PRAGMA user_version). Written by distill,
-- read by train and by anyone with the sqlite3 shell (README, "Querying the
-- soft labels with SQL").
-- The library runs this text once, inside the transaction that creates the
-- database; the meta rows are inserted by labels_db_open_write.
--
-- Version 1 is this schema without the meta key token_bytes: its tokens
-- blobs always hold 2-byte ids. Readers accept both versions, and a writer
-- resuming a version 1 database keeps writing 2-byte ids into it.

PRAGMA user_version = 2;

-- One row per setting. Keys: schema_version, token_bytes (integer 2 or 4:
-- the width of one id in sequences.tokens; 2 when teacher_vocab <= 65536,
-- else 4; version 1 databases lack it and hold 2-byte ids), teacher_hash (16
-- lowercase hex digits: the teacher checkpoint's identity hash, XXH3-64 of
-- its config and parameters, schemas/checkpoint.md), teacher_vocab,
-- teacher_layers, teacher_heads, teacher_channels, teacher_seq_len,
-- tokenizer (blob, the tokenizer's serialized form, schemas/tokenizer.md),
-- tokenizer_hash (16 lowercase hex digits: XXH3-64, seed 0, of the whole
-- tokenizer blob, its checksum included), k, codec_version, label_kind,
-- quantisation (text, for people: how top-k blobs quantise, with ranks
-- counted from 0 as in schemas/softlabel.md; older databases hold the same
-- text counting from 1, 'ranks >= 2' and 'rank-1'; written for sampled
-- databases too, whose counts are exact), tool_version, created_at (UTC, ISO
-- 8601), for sampled labels sample_seed (distill --seed, decimal), and
-- teacher_precision ('fp32' or 'bf16': the teacher's matrix products,
-- distill --precision; databases written before the key existed lack it and
-- were made in fp32). A resumed distill and distill merge compare
-- teacher_hash, tokenizer_hash, k, codec_version, label_kind, sample_seed
-- (when both databases have one) and teacher_precision and refuse rows made
-- otherwise; the other keys are informative and never
-- compared.
-- complete (0 or 1): distill sets it to 0 before it stores its first row and
-- to 1 once it has stored every record of its inputs (its shard); distill
-- merge likewise, and leaves 0 when a shard has 0. So 0 means a run was
-- interrupted (or is still running: its writer lock, base/filelock.h, says
-- which) and the database holds part of the corpus; train refuses it unless
-- --allow-partial-labels. Databases written before the key existed lack it
-- and count as complete.
-- label_kind says what every topk blob holds (schemas/softlabel.md):
--   'topk'      the teacher's top k ids and log-probs + tail; codec_version 3
--               when teacher_vocab <= 65536, else 4 (24-bit id codes); 1 in
--               databases of earlier versions, still read.
--   'sample:N'  N draws from the teacher per position, as distinct ids with
--               counts; k = N (the width train decodes each position to);
--               codec_version 2 when teacher_vocab <= 65536, else 5.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value
) WITHOUT ROWID;

-- One row per window of a record. tokens: n_tokens ids of meta token_bytes
-- bytes each, little-endian (uint16 or uint32; uint16 in version 1);
-- topk: the soft-label blob (of meta's label_kind) of positions
-- 0 .. n_tokens - 2 (position i predicts token i + 1). content_hash: XXH3-64
-- of the record bytes, stored as a signed 64-bit integer (the same bits).
-- Statistics are means over the positions of the window, computed by distill
-- from the teacher's full softmax at temperature 1 (all V tokens, before any
-- quantisation): mean_nll, -log p of the actual next token; mean_entropy,
-- -sum p log p over the whole vocabulary (nats); mean_top1_prob, the largest
-- p; mean_tail_mass, the mass outside the stored ids (top-k: outside the top
-- k; sample:N: outside the distinct ids drawn). The extension's
-- topk_entropy(topk) is another quantity: the mean entropy of the decoded
-- blob's partition (top-k entries + the tail as one bucket; for sampled
-- blobs, the empirical distribution of the draws); for top-k labels it is
-- below mean_entropy (the tail bucket merges entries), up to the codec's
-- rounding.
CREATE TABLE sequences (
    seq_id         INTEGER PRIMARY KEY,
    source         TEXT    NOT NULL,
    member         TEXT    NOT NULL,
    record_index   INTEGER NOT NULL,
    window         INTEGER NOT NULL,
    content_hash   INTEGER NOT NULL,
    n_tokens       INTEGER NOT NULL,
    tokens         BLOB    NOT NULL,
    topk           BLOB    NOT NULL,
    mean_nll       REAL,
    mean_entropy   REAL,
    mean_tail_mass REAL,
    mean_top1_prob REAL,
    UNIQUE (source, member, record_index, window)
);

-- Per source: how much was labeled and how sure the teacher was.
CREATE VIEW source_stats AS
SELECT source,
       COUNT(*)            AS sequences,
       SUM(n_tokens)       AS tokens,
       AVG(mean_nll)       AS avg_nll,
       AVG(mean_entropy)   AS avg_entropy,
       AVG(mean_tail_mass) AS avg_tail_mass,
       AVG(mean_top1_prob) AS avg_top1_prob
FROM sequences
GROUP BY source;

-- Sequences where the teacher is least sure, most uncertain first.
CREATE VIEW uncertain_sequences AS
SELECT seq_id, source, member, record_index, window, n_tokens,
       mean_entropy, mean_nll, mean_top1_prob, mean_tail_mass
FROM sequences
ORDER BY mean_entropy DESC;
