-- The schema the edge needs and protects (SPEC §7, seed §2.4, §4.8).
-- Status-like columns are text + CHECK, never enum types: enum type lookups prepare statements,
-- which break behind Hyperdrive and transaction pooling. No outbox_event or dlq table (seed §13):
-- jobs live on Cloudflare Queues, dead jobs in the DEAD_JOBS bucket.
SET LOCAL ROLE migrator;  -- objects belong to migrator (RESET at the end, before refinery records the file)

CREATE TABLE account (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  plan        text NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'plus', 'system')),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app_user (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id     uuid NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  email          citext NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
  password_hash  text NOT NULL,
  display_name   text,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX app_user_account_idx ON app_user (account_id);

CREATE TABLE child (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id  uuid NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
  birth_date  date,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX child_account_idx ON child (account_id);

CREATE TABLE moment (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id   uuid NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  child_id     uuid NOT NULL REFERENCES child (id) ON DELETE CASCADE,
  title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  occurred_on  date NOT NULL,
  body         text CHECK (length(body) <= 20000),
  visibility   text NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'shareable')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX moment_account_idx ON moment (account_id);
CREATE INDEX moment_child_idx ON moment (child_id, occurred_on);

-- Lifecycle: pending → queued → processing → ready | failed; deleted after delete_asset/reap.
CREATE TABLE asset (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id             uuid NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  moment_id              uuid REFERENCES moment (id) ON DELETE SET NULL,
  media_type             text NOT NULL CHECK (media_type ~ '^(image|video)/[a-z0-9.+-]+$'),
  original_key           text NOT NULL CHECK (length(original_key) BETWEEN 1 AND 1024),
  size_bytes             bigint NOT NULL CHECK (size_bytes >= 0),
  etag                   text,
  width                  integer CHECK (width > 0),
  height                 integer CHECK (height > 0),
  alt_text               text,
  -- derived previews: [{"key": "derived/…/480.webp", "width": 480}, …]; never originals
  derivatives            jsonb NOT NULL DEFAULT '[]'::jsonb,
  status                 text NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'queued', 'processing', 'ready', 'failed', 'deleted')),
  failure_reason         text,
  job_id                 uuid,
  is_probe               boolean NOT NULL DEFAULT false,
  queued_at              timestamptz,
  processing_started_at  timestamptz,
  ready_at               timestamptz,
  deleted_at             timestamptz,
  reap_enqueued_at       timestamptz,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX asset_account_idx ON asset (account_id);
CREATE INDEX asset_moment_idx ON asset (moment_id);
CREATE INDEX asset_status_queued_idx ON asset (status, queued_at) WHERE status = 'queued';
CREATE INDEX asset_orphan_idx ON asset (created_at) WHERE moment_id IS NULL AND deleted_at IS NULL AND NOT is_probe;

CREATE TABLE share_link (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id      uuid NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  child_id        uuid NOT NULL REFERENCES child (id) ON DELETE CASCADE,
  -- SHA-256 of the token's 16 random bytes; the token itself is never stored
  token_hash      bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  title           text CHECK (length(title) <= 120),
  moment_ids      uuid[] NOT NULL CHECK (cardinality(moment_ids) BETWEEN 1 AND 200),
  expires_at      timestamptz,
  revoked_at      timestamptz,
  view_count      bigint NOT NULL DEFAULT 0 CHECK (view_count >= 0),
  last_viewed_at  timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX share_link_account_idx ON share_link (account_id);
CREATE INDEX share_link_popular_idx ON share_link (view_count DESC) WHERE revoked_at IS NULL;

CREATE TABLE usage_counter (
  account_id    uuid NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  metric        text NOT NULL CHECK (metric IN ('storage_bytes', 'moments', 'uploads', 'exports', 'share_views')),
  period_start  date NOT NULL,
  value         bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (account_id, metric, period_start)
);

CREATE TABLE health_measurement (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id   uuid NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  child_id     uuid NOT NULL REFERENCES child (id) ON DELETE CASCADE,
  kind         text NOT NULL CHECK (kind IN ('weight_g', 'length_mm', 'head_circumference_mm', 'temperature_c', 'vaccine')),
  value        numeric,
  note         text,
  measured_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX health_measurement_account_idx ON health_measurement (account_id);

CREATE TABLE vault_document (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id  uuid NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  child_id    uuid REFERENCES child (id) ON DELETE CASCADE,
  kind        text NOT NULL CHECK (kind IN ('birth_certificate', 'id_document', 'health_card', 'other')),
  title       text NOT NULL,
  object_key  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vault_document_account_idx ON vault_document (account_id);

-- Downloadable archives of an account; the object expires after 72 h (seed §7.2).
CREATE TABLE account_export (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id        uuid NOT NULL REFERENCES account (id) ON DELETE CASCADE,
  status            text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'processing', 'ready', 'failed', 'deleted')),
  object_key        text,
  failure_reason    text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  ready_at          timestamptz,
  reap_enqueued_at  timestamptz,
  deleted_at        timestamptz
);
CREATE INDEX account_export_account_idx ON account_export (account_id);
CREATE INDEX account_export_expiry_idx ON account_export (created_at) WHERE deleted_at IS NULL;

RESET ROLE;
