-- Signed-policy rollback protection: for each policy file (by absolute path), the newest
-- trusted signature airlock has honoured. A signature older than this one is a rollback to an
-- earlier signed policy and is refused (see docs/signed-policy.md). Times are epoch ms.

CREATE TABLE policy_signature_high (
    policy_path    TEXT PRIMARY KEY,
    signed_at_ms   BIGINT NOT NULL,
    signer         TEXT NOT NULL,
    manifest_hash  TEXT NOT NULL,
    seen_at        BIGINT NOT NULL
);
