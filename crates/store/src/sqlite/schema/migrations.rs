//! The migrations themselves, oldest first: one SQL script per schema
//! version, each saying what it adds and why.

/// Each entry moves the schema one version forward. Never edit a released entry;
/// append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: orgs, access policies, users, web sessions, interactions, audit log.
    r#"
    CREATE TABLE orgs (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE policies (
        name          TEXT PRIMARY KEY,
        org_id        INTEGER NOT NULL REFERENCES orgs(id),
        rights        INTEGER NOT NULL,
        primary_key   TEXT NOT NULL,
        secondary_key TEXT NOT NULL,
        portal_id     TEXT,
        provider_id   TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    );
    CREATE INDEX policies_org ON policies(org_id);
    CREATE TABLE users (
        name          TEXT PRIMARY KEY,
        org_id        INTEGER NOT NULL REFERENCES orgs(id),
        role          TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE web_sessions (
        token_hash  TEXT PRIMARY KEY,
        org_id      INTEGER NOT NULL,
        user_name   TEXT NOT NULL,
        csrf_token  TEXT NOT NULL,
        expires_at  INTEGER NOT NULL
    );
    -- Interactions: the rowid is the arrival sequence. Small dictionary ids keep
    -- repeated strings (type, portal) out of every row.
    --
    -- Both indexes lead with time so that ingestion, which arrives roughly in
    -- time order, touches only a small, hot region of each B-tree: random-order
    -- index pages rewritten on every commit are what limits SQLite's insert
    -- rate. `day` (UTC day number) buckets the contact index; a timeline query
    -- seeks once per day of its window.
    CREATE TABLE dict (
        id    INTEGER PRIMARY KEY,
        kind  INTEGER NOT NULL,
        text  TEXT NOT NULL,
        UNIQUE (kind, text)
    );
    CREATE TABLE interactions (
        seq         INTEGER PRIMARY KEY,
        org_id      INTEGER NOT NULL,
        day         INTEGER NOT NULL,
        ts          INTEGER NOT NULL,
        id          TEXT NOT NULL,
        type_id     INTEGER NOT NULL,
        portal_id   INTEGER NOT NULL,
        contact_id  TEXT,
        session_id  TEXT,
        fields      TEXT NOT NULL
    );
    -- Idempotency: an interaction is its id at its time; a retry resends both.
    CREATE UNIQUE INDEX interactions_by_time ON interactions(org_id, ts, id);
    CREATE INDEX interactions_by_contact ON interactions(day, org_id, contact_id, ts)
        WHERE contact_id IS NOT NULL;
    CREATE TABLE audit_records (
        org_id         INTEGER NOT NULL,
        seq            INTEGER NOT NULL,
        id             TEXT NOT NULL,
        creation_time  INTEGER NOT NULL,
        operation      TEXT NOT NULL,
        category       TEXT NOT NULL,
        user_name      TEXT,
        record         TEXT NOT NULL,
        PRIMARY KEY (org_id, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX audit_records_by_id ON audit_records(org_id, id);
    "#,
    // 2: portals, interaction types, contacts, cases, and session stitching.
    r#"
    CREATE TABLE portals (
        org_id          INTEGER NOT NULL REFERENCES orgs(id),
        id              TEXT NOT NULL,
        name            TEXT NOT NULL,
        allowed_origins TEXT NOT NULL,
        policy          TEXT,
        retention_days  INTEGER,
        public_key      TEXT NOT NULL UNIQUE,
        deleted         INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        PRIMARY KEY (org_id, id)
    ) WITHOUT ROWID;
    CREATE TABLE interaction_types (
        org_id        INTEGER NOT NULL REFERENCES orgs(id),
        name          TEXT NOT NULL,
        display_name  TEXT NOT NULL,
        fields_schema TEXT,
        state         TEXT NOT NULL,
        builtin       INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        PRIMARY KEY (org_id, name)
    ) WITHOUT ROWID;
    -- Contact ids are stored in the compact form the interactions use, so
    -- cases join to interactions without decoding.
    CREATE TABLE contacts (
        org_id      INTEGER NOT NULL REFERENCES orgs(id),
        id          BLOB NOT NULL,
        name        TEXT,
        email       TEXT,
        attributes  TEXT NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (org_id, id)
    ) WITHOUT ROWID;
    CREATE TABLE cases (
        org_id      INTEGER NOT NULL REFERENCES orgs(id),
        id          TEXT NOT NULL,
        contact_id  BLOB NOT NULL,
        title       TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        status      TEXT NOT NULL,
        PRIMARY KEY (org_id, id)
    ) WITHOUT ROWID;
    CREATE INDEX cases_by_contact ON cases(org_id, contact_id, created_at);
    CREATE INDEX cases_by_time ON cases(org_id, created_at);
    -- The contact an anonymous session turned out to belong to. The first
    -- interaction of a session that carries a contact id links it; earlier
    -- anonymous interactions of the session are then given the contact.
    CREATE TABLE session_contacts (
        org_id      INTEGER NOT NULL,
        session_id  BLOB NOT NULL,
        contact_id  BLOB NOT NULL,
        PRIMARY KEY (org_id, session_id)
    ) WITHOUT ROWID;
    CREATE INDEX session_contacts_by_contact ON session_contacts(org_id, contact_id);
    CREATE INDEX interactions_anonymous ON interactions(org_id, session_id)
        WHERE contact_id IS NULL AND session_id IS NOT NULL;
    "#,
    // 3: the activity log proper: searchable columns, split parts, free
    // text, the per-org hash chain, signed checkpoints, retention anchors,
    // audit settings and forwarding cursors. Rows of version 1 move over;
    // their links are computed at the next start (see `audit::backfill`).
    r#"
    CREATE TABLE audit_log (
        rid            INTEGER PRIMARY KEY,
        org_id         INTEGER NOT NULL,
        seq            INTEGER NOT NULL,
        id             TEXT NOT NULL,
        creation_time  INTEGER NOT NULL,
        stored_at      INTEGER NOT NULL,
        operation      TEXT NOT NULL,
        category       TEXT NOT NULL,
        user_name      TEXT,
        entity_name    TEXT,
        entity_id      TEXT,
        result_status  TEXT,
        client_ip      TEXT,
        service_name   TEXT,
        correlation_id TEXT,
        -- 0: the record's JSON bytes are in `record`; N: in N rows of audit_parts.
        parts          INTEGER NOT NULL DEFAULT 0,
        record         BLOB,
        prev_hash      BLOB NOT NULL,
        hash           BLOB NOT NULL
    );
    CREATE UNIQUE INDEX audit_log_by_seq ON audit_log(org_id, seq);
    CREATE UNIQUE INDEX audit_log_by_id ON audit_log(org_id, id);
    CREATE INDEX audit_log_by_time ON audit_log(org_id, creation_time, seq);
    CREATE INDEX audit_log_by_user ON audit_log(org_id, user_name, creation_time);
    CREATE INDEX audit_log_by_entity ON audit_log(org_id, entity_name, creation_time);
    CREATE INDEX audit_log_by_operation ON audit_log(org_id, operation, creation_time);
    CREATE TABLE audit_parts (
        org_id          INTEGER NOT NULL,
        seq             INTEGER NOT NULL,
        part            INTEGER NOT NULL,
        total           INTEGER NOT NULL,
        correlation_id  TEXT NOT NULL,
        whole_sha256    BLOB NOT NULL,
        bytes           BLOB NOT NULL,
        PRIMARY KEY (org_id, seq, part)
    ) WITHOUT ROWID;
    -- Free text over Fields and Query; rowid = audit_log.rid. Contentless:
    -- the text lives in the record already.
    CREATE VIRTUAL TABLE audit_fts USING fts5(body, content='', contentless_delete=1);
    CREATE TABLE audit_anchors (
        org_id     INTEGER PRIMARY KEY,
        seq        INTEGER NOT NULL,
        hash       BLOB NOT NULL,
        purged_at  INTEGER NOT NULL
    );
    CREATE TABLE audit_checkpoints (
        org_id       INTEGER NOT NULL,
        number       INTEGER NOT NULL,
        seq          INTEGER NOT NULL,
        hash         BLOB NOT NULL,
        anchor_seq   INTEGER NOT NULL,
        anchor_hash  BLOB NOT NULL,
        created_at   INTEGER NOT NULL,
        signature    BLOB NOT NULL,
        PRIMARY KEY (org_id, number)
    ) WITHOUT ROWID;
    CREATE TABLE audit_settings (
        org_id                INTEGER PRIMARY KEY,
        auditing_enabled      INTEGER NOT NULL,
        user_access_auditing  INTEGER NOT NULL,
        read_auditing         INTEGER NOT NULL,
        excluded_messages     TEXT NOT NULL,
        retention_days        INTEGER
    );
    CREATE TABLE audit_entity_settings (
        org_id                INTEGER NOT NULL,
        entity                TEXT NOT NULL,
        auditing              INTEGER NOT NULL,
        single_record_read    INTEGER NOT NULL,
        multiple_record_read  INTEGER NOT NULL,
        PRIMARY KEY (org_id, entity)
    ) WITHOUT ROWID;
    CREATE TABLE audit_forward_cursors (
        forwarder  TEXT NOT NULL,
        org_id     INTEGER NOT NULL,
        seq        INTEGER NOT NULL,
        PRIMARY KEY (forwarder, org_id)
    ) WITHOUT ROWID;
    INSERT INTO audit_log (org_id, seq, id, creation_time, stored_at, operation, category,
        user_name, entity_name, entity_id, result_status, client_ip, service_name,
        correlation_id, parts, record, prev_hash, hash)
    SELECT org_id, seq, id, creation_time, creation_time, operation, category, user_name,
        json_extract(record, '$.EntityName'), json_extract(record, '$.EntityId'),
        json_extract(record, '$.ResultStatus'), json_extract(record, '$.ClientIP'),
        json_extract(record, '$.ServiceName'), json_extract(record, '$.CorrelationId'),
        0, CAST(record AS BLOB), zeroblob(32), zeroblob(32)
    FROM audit_records ORDER BY org_id, seq;
    DROP TABLE audit_records;
    "#,
    // 4: channel analytics: providers, KPI event definitions, queues,
    // conversations, sessions, participants, KPI events, session facts, and
    // the 15-minute pre-aggregates with each owner's contributions to them.
    r#"
    CREATE TABLE ch_providers (
        org_id           INTEGER NOT NULL,
        id               TEXT NOT NULL,
        name             TEXT NOT NULL,
        enable_analytics INTEGER NOT NULL,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        PRIMARY KEY (org_id, id)
    ) WITHOUT ROWID;
    CREATE TABLE ch_definitions (
        org_id       INTEGER NOT NULL,
        name         TEXT NOT NULL,
        display_name TEXT,
        description  TEXT,
        enabled      INTEGER NOT NULL,
        PRIMARY KEY (org_id, name)
    ) WITHOUT ROWID;
    CREATE TABLE ch_queues (
        org_id                INTEGER NOT NULL,
        queue                 TEXT NOT NULL,
        service_level_seconds INTEGER NOT NULL,
        short_abandon_seconds INTEGER NOT NULL,
        updated_at            INTEGER NOT NULL,
        PRIMARY KEY (org_id, queue)
    ) WITHOUT ROWID;
    CREATE TABLE ch_conversations (
        rid         INTEGER PRIMARY KEY,
        org_id      INTEGER NOT NULL,
        id          TEXT NOT NULL,
        provider_id TEXT,
        channel     TEXT,
        at          INTEGER NOT NULL,
        record      TEXT NOT NULL,
        UNIQUE (org_id, id)
    );
    CREATE INDEX ch_conversations_by_time ON ch_conversations(org_id, at, rid);
    CREATE TABLE ch_sessions (
        rid             INTEGER PRIMARY KEY,
        org_id          INTEGER NOT NULL,
        id              TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        queue           TEXT,
        channel         TEXT,
        at              INTEGER NOT NULL,
        record          TEXT NOT NULL,
        UNIQUE (org_id, id)
    );
    CREATE INDEX ch_sessions_by_time ON ch_sessions(org_id, at, rid);
    CREATE INDEX ch_sessions_by_conversation ON ch_sessions(org_id, conversation_id);
    CREATE INDEX ch_sessions_by_queue ON ch_sessions(org_id, queue);
    CREATE TABLE ch_participants (
        rid             INTEGER PRIMARY KEY,
        org_id          INTEGER NOT NULL,
        session_id      TEXT NOT NULL,
        id              TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        kind            TEXT,
        at              INTEGER NOT NULL,
        record          TEXT NOT NULL,
        UNIQUE (org_id, session_id, id)
    );
    CREATE INDEX ch_participants_by_id ON ch_participants(org_id, id);
    CREATE TABLE ch_events (
        rid             INTEGER PRIMARY KEY,
        org_id          INTEGER NOT NULL,
        event_id        TEXT NOT NULL,
        conversation_id TEXT,
        session_id      TEXT,
        participant_id  TEXT,
        name            TEXT NOT NULL,
        ts              INTEGER NOT NULL,
        record          TEXT NOT NULL,
        UNIQUE (org_id, event_id)
    );
    CREATE INDEX ch_events_by_session ON ch_events(org_id, session_id, ts);
    CREATE INDEX ch_events_by_time ON ch_events(org_id, ts, rid);
    CREATE INDEX ch_events_presence ON ch_events(org_id, participant_id, ts)
        WHERE name IN ('AgentSignedIn', 'AgentSignedOut');
    CREATE TABLE ch_facts (
        org_id        INTEGER NOT NULL,
        session_id    TEXT NOT NULL,
        queue         TEXT NOT NULL,
        channel       TEXT NOT NULL,
        agent         TEXT NOT NULL,
        provider      TEXT NOT NULL,
        queued_at     INTEGER,
        answered_at   INTEGER,
        closed_at     INTEGER,
        status        TEXT NOT NULL,
        last_activity INTEGER NOT NULL,
        facts         TEXT NOT NULL,
        PRIMARY KEY (org_id, session_id)
    ) WITHOUT ROWID;
    CREATE INDEX ch_facts_queued ON ch_facts(org_id, queued_at) WHERE queued_at IS NOT NULL;
    CREATE INDEX ch_facts_answered ON ch_facts(org_id, answered_at) WHERE answered_at IS NOT NULL;
    CREATE INDEX ch_facts_closed ON ch_facts(org_id, closed_at) WHERE closed_at IS NOT NULL;
    CREATE INDEX ch_facts_live ON ch_facts(org_id, last_activity) WHERE status != 'closed';
    CREATE TABLE ch_contrib (
        org_id  INTEGER NOT NULL,
        owner   TEXT NOT NULL,
        entries TEXT NOT NULL,
        PRIMARY KEY (org_id, owner)
    ) WITHOUT ROWID;
    CREATE TABLE ch_agg (
        org_id   INTEGER NOT NULL,
        part     INTEGER NOT NULL,
        bucket   INTEGER NOT NULL,
        queue    TEXT NOT NULL,
        channel  TEXT NOT NULL,
        agent    TEXT NOT NULL,
        provider TEXT NOT NULL,
        sum      REAL NOT NULL,
        count    INTEGER NOT NULL,
        PRIMARY KEY (org_id, part, bucket, queue, channel, agent, provider)
    ) WITHOUT ROWID;
    "#,
    // 5: alert rules on channel metrics, and the alerts they raised.
    r#"
    CREATE TABLE ch_alert_rules (
        org_id INTEGER NOT NULL,
        id     TEXT NOT NULL,
        rule   TEXT NOT NULL,
        PRIMARY KEY (org_id, id)
    ) WITHOUT ROWID;
    CREATE TABLE ch_alerts (
        org_id     INTEGER NOT NULL,
        id         TEXT NOT NULL,
        rule_id    TEXT NOT NULL,
        state      TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        record     TEXT NOT NULL,
        PRIMARY KEY (org_id, id)
    ) WITHOUT ROWID;
    CREATE INDEX ch_alerts_open ON ch_alerts(org_id, rule_id) WHERE state != 'resolved';
    CREATE INDEX ch_alerts_by_time ON ch_alerts(org_id, started_at);
    "#,
    // 6: each org's written head, the sequence and link the writer last
    // wrote, kept in the same transaction as the records so that records
    // deleted at the tail are noticed (see `audit::chain`). Taken from the
    // log as it stands; rows still to be linked get theirs at the backfill.
    r#"
    CREATE TABLE audit_heads (
        org_id  INTEGER PRIMARY KEY,
        seq     INTEGER NOT NULL,
        hash    BLOB NOT NULL
    );
    INSERT INTO audit_heads (org_id, seq, hash)
    SELECT l.org_id, l.seq, l.hash FROM audit_log l
    WHERE l.seq = (SELECT max(m.seq) FROM audit_log m WHERE m.org_id = l.org_id);
    INSERT OR IGNORE INTO audit_heads (org_id, seq, hash)
    SELECT org_id, seq, hash FROM audit_anchors;
    "#,
    // 7: the activity log's filter indexes end in `seq` as well, so that a
    // search for one user, entity or operation reads its page newest first
    // straight off the index instead of walking every record in time order.
    r#"
    DROP INDEX audit_log_by_user;
    DROP INDEX audit_log_by_entity;
    DROP INDEX audit_log_by_operation;
    CREATE INDEX audit_log_by_user ON audit_log(org_id, user_name, creation_time, seq);
    CREATE INDEX audit_log_by_entity ON audit_log(org_id, entity_name, creation_time, seq);
    CREATE INDEX audit_log_by_operation ON audit_log(org_id, operation, creation_time, seq);
    "#,
    // 8: the free-text index reads its text from the chained records, so
    // that FTS5's integrity check can prove it matches them: an
    // external-content index over the view `audit_text`, which derives each
    // record's text from its stored bytes (reassembled from its parts when
    // split) with `tl_audit_text` (see `audit_integrity`). The purge
    // anchor's unread time goes.
    r#"
    DROP TABLE audit_fts;
    CREATE VIEW audit_text (rid, body) AS
    SELECT l.rid, tl_audit_text(CASE WHEN l.parts = 0 THEN l.record ELSE
        (SELECT group_concat(CAST(p.bytes AS TEXT), '' ORDER BY p.part) FROM audit_parts p
         WHERE p.org_id = l.org_id AND p.seq = l.seq) END)
    FROM audit_log l;
    CREATE VIRTUAL TABLE audit_fts USING fts5(body, content='audit_text', content_rowid='rid');
    INSERT INTO audit_fts (audit_fts) VALUES ('rebuild');
    ALTER TABLE audit_anchors DROP COLUMN purged_at;
    "#,
    // 9: users can be disabled, and their last sign-in is kept; sessions
    // are found by user, to end them all at once. Orgs can name their own
    // sign-in and sign-out operations.
    r#"
    ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN last_sign_in INTEGER;
    CREATE INDEX web_sessions_by_user ON web_sessions(user_name);
    ALTER TABLE audit_settings ADD COLUMN sign_in_operations TEXT NOT NULL DEFAULT '[]';
    "#,
    // 10: the tables behind the write-ahead log: how far each materialiser
    // has applied it, and the frames one could not read.
    r#"
    CREATE TABLE materialised (
        name   TEXT PRIMARY KEY,
        frame  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE dead_letters (
        materialiser  TEXT NOT NULL,
        frame         INTEGER NOT NULL,
        error         TEXT NOT NULL,
        bytes         BLOB NOT NULL,
        at            INTEGER NOT NULL
    );
    "#,
    // 11: channel rollups without the agent, by quarter and by hour, for
    // dashboards (see `rollups.rs`); filled from the per-agent buckets.
    r#"
    CREATE TABLE ch_agg_q (
        org_id   INTEGER NOT NULL,
        part     INTEGER NOT NULL,
        bucket   INTEGER NOT NULL,
        queue    TEXT NOT NULL,
        channel  TEXT NOT NULL,
        provider TEXT NOT NULL,
        sum      REAL NOT NULL,
        count    INTEGER NOT NULL,
        PRIMARY KEY (org_id, part, bucket, queue, channel, provider)
    ) WITHOUT ROWID;
    CREATE TABLE ch_agg_h (
        org_id   INTEGER NOT NULL,
        part     INTEGER NOT NULL,
        bucket   INTEGER NOT NULL,
        queue    TEXT NOT NULL,
        channel  TEXT NOT NULL,
        provider TEXT NOT NULL,
        sum      REAL NOT NULL,
        count    INTEGER NOT NULL,
        PRIMARY KEY (org_id, part, bucket, queue, channel, provider)
    ) WITHOUT ROWID;
    INSERT INTO ch_agg_q
        SELECT org_id, part, bucket, queue, channel, provider, SUM(sum), SUM(count)
        FROM ch_agg GROUP BY org_id, part, bucket, queue, channel, provider;
    INSERT INTO ch_agg_h
        SELECT org_id, part, bucket - bucket % 3600000, queue, channel, provider,
               SUM(sum), SUM(count)
        FROM ch_agg GROUP BY org_id, part, bucket - bucket % 3600000, queue, channel, provider;
    "#,
    // 12: journey summaries per contact and hour (see `journeys.rs`), led by
    // the day like the contact index, and which interactions took their
    // contact from their session. Filled from the interactions already
    // stored, whose stitching is not known: they count as identified.
    r#"
    ALTER TABLE interactions ADD COLUMN stitched INTEGER;
    CREATE TABLE journey_hours (
        day           INTEGER NOT NULL,
        org_id        INTEGER NOT NULL,
        contact_id    TEXT NOT NULL,
        hour          INTEGER NOT NULL,
        session_id    TEXT NOT NULL,
        type_id       INTEGER NOT NULL,
        count         INTEGER NOT NULL,
        first_ts      INTEGER NOT NULL,
        last_ts       INTEGER NOT NULL,
        identified_ts INTEGER,
        stitched      INTEGER NOT NULL,
        PRIMARY KEY (day, org_id, contact_id, hour, session_id, type_id)
    ) WITHOUT ROWID;
    CREATE TABLE journey_articles (
        day        INTEGER NOT NULL,
        org_id     INTEGER NOT NULL,
        contact_id TEXT NOT NULL,
        hour       INTEGER NOT NULL,
        article    TEXT NOT NULL,
        count      INTEGER NOT NULL,
        last_ts    INTEGER NOT NULL,
        title      TEXT,
        title_ts   INTEGER,
        PRIMARY KEY (day, org_id, contact_id, hour, article)
    ) WITHOUT ROWID;
    CREATE TABLE journey_searches (
        day        INTEGER NOT NULL,
        org_id     INTEGER NOT NULL,
        contact_id TEXT NOT NULL,
        ts         INTEGER NOT NULL,
        id         TEXT NOT NULL,
        text       TEXT NOT NULL,
        PRIMARY KEY (day, org_id, contact_id, ts, id)
    ) WITHOUT ROWID;
    INSERT INTO journey_hours
        SELECT day, org_id, contact_id, ts - ts % 3600000, COALESCE(session_id, ''), type_id,
               COUNT(*), MIN(ts), MAX(ts), MIN(ts), 0
        FROM interactions WHERE contact_id IS NOT NULL
        GROUP BY day, org_id, contact_id, ts - ts % 3600000, COALESCE(session_id, ''), type_id;
    -- Built-in types store their fields positionally: an article view's id
    -- and title first, a search's text first.
    INSERT INTO journey_articles
        SELECT day, org_id, contact_id, ts - ts % 3600000, json_extract(fields, '$[0]'),
               COUNT(*), MAX(ts), NULL, NULL
        FROM interactions
        WHERE contact_id IS NOT NULL AND json_extract(fields, '$[0]') IS NOT NULL
          AND type_id IN (SELECT id FROM dict WHERE kind = 1
                          AND text = 'portal_viewknowledgearticle')
        GROUP BY day, org_id, contact_id, ts - ts % 3600000, json_extract(fields, '$[0]');
    UPDATE journey_articles SET (title_ts, title) = (
        SELECT MAX(i.ts), json_extract(i.fields, '$[1]') FROM interactions i
        WHERE i.day = journey_articles.day AND i.org_id = journey_articles.org_id
          AND i.contact_id = journey_articles.contact_id
          AND i.ts >= journey_articles.hour AND i.ts < journey_articles.hour + 3600000
          AND json_extract(i.fields, '$[0]') = journey_articles.article
          AND json_extract(i.fields, '$[1]') IS NOT NULL
          AND i.type_id IN (SELECT id FROM dict WHERE kind = 1
                            AND text = 'portal_viewknowledgearticle'));
    INSERT OR IGNORE INTO journey_searches
        SELECT day, org_id, contact_id, ts, id, json_extract(fields, '$[0]')
        FROM interactions
        WHERE contact_id IS NOT NULL AND json_extract(fields, '$[0]') IS NOT NULL
          AND type_id IN (SELECT id FROM dict WHERE kind = 1 AND text = 'portal_search');
    "#,
    // 13: the session's closing sentiment band, as a dimension of the
    // per-agent rollups and a column of the facts; which closed sessions
    // were dissatisfied; and which derivation the facts were made by, so
    // that a start after an upgrade derives them again.
    r#"
    CREATE TABLE ch_agg_new (
        org_id         INTEGER NOT NULL,
        part           INTEGER NOT NULL,
        bucket         INTEGER NOT NULL,
        queue          TEXT NOT NULL,
        channel        TEXT NOT NULL,
        agent          TEXT NOT NULL,
        provider       TEXT NOT NULL,
        sentiment_band TEXT NOT NULL,
        sum            REAL NOT NULL,
        count          INTEGER NOT NULL,
        PRIMARY KEY (org_id, part, bucket, queue, channel, agent, provider, sentiment_band)
    ) WITHOUT ROWID;
    INSERT INTO ch_agg_new
        SELECT org_id, part, bucket, queue, channel, agent, provider, '', sum, count FROM ch_agg;
    DROP TABLE ch_agg;
    ALTER TABLE ch_agg_new RENAME TO ch_agg;
    ALTER TABLE ch_facts ADD COLUMN sentiment_band TEXT NOT NULL DEFAULT '';
    ALTER TABLE ch_facts ADD COLUMN dissatisfied INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX ch_facts_dissatisfied ON ch_facts(org_id, closed_at) WHERE dissatisfied;
    CREATE TABLE derivations (
        name    TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO derivations (name, version) VALUES ('channel', 0);
    "#,
    // 14: channel rollups by hour and queue alone, one row per hour and
    // queue with a sum and count column per part (`s<code>`, `c<code>`),
    // for the dashboards that group or filter by queue (see `rollups.rs`);
    // filled from the hourly rollups. A new part adds its two columns in
    // its own migration.
    r#"
    CREATE TABLE ch_agg_hq (
        org_id   INTEGER NOT NULL,
        bucket   INTEGER NOT NULL,
        queue    TEXT NOT NULL,
        s0  REAL NOT NULL DEFAULT 0, c0  INTEGER NOT NULL DEFAULT 0,
        s1  REAL NOT NULL DEFAULT 0, c1  INTEGER NOT NULL DEFAULT 0,
        s2  REAL NOT NULL DEFAULT 0, c2  INTEGER NOT NULL DEFAULT 0,
        s3  REAL NOT NULL DEFAULT 0, c3  INTEGER NOT NULL DEFAULT 0,
        s4  REAL NOT NULL DEFAULT 0, c4  INTEGER NOT NULL DEFAULT 0,
        s5  REAL NOT NULL DEFAULT 0, c5  INTEGER NOT NULL DEFAULT 0,
        s6  REAL NOT NULL DEFAULT 0, c6  INTEGER NOT NULL DEFAULT 0,
        s7  REAL NOT NULL DEFAULT 0, c7  INTEGER NOT NULL DEFAULT 0,
        s8  REAL NOT NULL DEFAULT 0, c8  INTEGER NOT NULL DEFAULT 0,
        s9  REAL NOT NULL DEFAULT 0, c9  INTEGER NOT NULL DEFAULT 0,
        s10 REAL NOT NULL DEFAULT 0, c10 INTEGER NOT NULL DEFAULT 0,
        s11 REAL NOT NULL DEFAULT 0, c11 INTEGER NOT NULL DEFAULT 0,
        s12 REAL NOT NULL DEFAULT 0, c12 INTEGER NOT NULL DEFAULT 0,
        s13 REAL NOT NULL DEFAULT 0, c13 INTEGER NOT NULL DEFAULT 0,
        s14 REAL NOT NULL DEFAULT 0, c14 INTEGER NOT NULL DEFAULT 0,
        s15 REAL NOT NULL DEFAULT 0, c15 INTEGER NOT NULL DEFAULT 0,
        s16 REAL NOT NULL DEFAULT 0, c16 INTEGER NOT NULL DEFAULT 0,
        s17 REAL NOT NULL DEFAULT 0, c17 INTEGER NOT NULL DEFAULT 0,
        s18 REAL NOT NULL DEFAULT 0, c18 INTEGER NOT NULL DEFAULT 0,
        s19 REAL NOT NULL DEFAULT 0, c19 INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (org_id, bucket, queue)
    ) WITHOUT ROWID;
    INSERT INTO ch_agg_hq (org_id, bucket, queue, s0, c0, s1, c1, s2, c2, s3, c3, s4, c4, s5, c5, s6, c6, s7, c7, s8, c8, s9, c9, s10, c10, s11, c11, s12, c12, s13, c13, s14, c14, s15, c15, s16, c16, s17, c17, s18, c18, s19, c19)
        SELECT org_id, bucket, queue,
        SUM(CASE WHEN part = 0 THEN sum ELSE 0 END), SUM(CASE WHEN part = 0 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 1 THEN sum ELSE 0 END), SUM(CASE WHEN part = 1 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 2 THEN sum ELSE 0 END), SUM(CASE WHEN part = 2 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 3 THEN sum ELSE 0 END), SUM(CASE WHEN part = 3 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 4 THEN sum ELSE 0 END), SUM(CASE WHEN part = 4 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 5 THEN sum ELSE 0 END), SUM(CASE WHEN part = 5 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 6 THEN sum ELSE 0 END), SUM(CASE WHEN part = 6 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 7 THEN sum ELSE 0 END), SUM(CASE WHEN part = 7 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 8 THEN sum ELSE 0 END), SUM(CASE WHEN part = 8 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 9 THEN sum ELSE 0 END), SUM(CASE WHEN part = 9 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 10 THEN sum ELSE 0 END), SUM(CASE WHEN part = 10 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 11 THEN sum ELSE 0 END), SUM(CASE WHEN part = 11 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 12 THEN sum ELSE 0 END), SUM(CASE WHEN part = 12 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 13 THEN sum ELSE 0 END), SUM(CASE WHEN part = 13 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 14 THEN sum ELSE 0 END), SUM(CASE WHEN part = 14 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 15 THEN sum ELSE 0 END), SUM(CASE WHEN part = 15 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 16 THEN sum ELSE 0 END), SUM(CASE WHEN part = 16 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 17 THEN sum ELSE 0 END), SUM(CASE WHEN part = 17 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 18 THEN sum ELSE 0 END), SUM(CASE WHEN part = 18 THEN count ELSE 0 END),
        SUM(CASE WHEN part = 19 THEN sum ELSE 0 END), SUM(CASE WHEN part = 19 THEN count ELSE 0 END)
        FROM ch_agg_h GROUP BY org_id, bucket, queue;
    "#,
    // 15: zstd dictionaries for audit records, one per org, trained from
    // its first records; `id` is derived from the org and the bytes (see
    // `audit::codec`), and a compressed record names it.
    r#"
    CREATE TABLE audit_dicts (
        id      INTEGER PRIMARY KEY,
        org_id  INTEGER NOT NULL,
        dict    BLOB NOT NULL
    );
    "#,
];
