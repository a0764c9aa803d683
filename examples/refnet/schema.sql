-- RefNet database fixture: schema.
--
-- The tables RefNet's services own (see REFNET_SCHEMA.md): venues, journals, papers, authors,
-- paper_authors, paper_relations, processing_queue, in the `public` schema. refnet-jobs does not
-- own them; its RefNet scheduled tasks only read and update them. This file gives tests and
-- demos the same shape.
--
-- * Timestamps are `timestamp without time zone` holding UTC, as in RefNet. Defaults use
--   `now() AT TIME ZONE 'UTC'`, never the session time zone. Convert with care when comparing
--   with `timestamptz` values (e.g. `ts AT TIME ZONE 'UTC'` gives a timestamptz).
-- * Re-runnable: every statement is CREATE ... IF NOT EXISTS. Nothing is dropped or altered,
--   so loading it on top of an existing RefNet database changes nothing.
-- * NOT NULL is used for keys, the columns the schema calls "not null", the status columns and
--   the counters that have defaults, and created_at/updated_at.
--
-- Load:  psql -v ON_ERROR_STOP=1 -f schema.sql   (then sample_data.sql for a sample)

-- Conferences and other publication venues (the ids look like Semantic Scholar venue UUIDs).
CREATE TABLE IF NOT EXISTS public.venues (
    venue_id        varchar(255) PRIMARY KEY,
    name            text NOT NULL,
    short_name      varchar(100),
    venue_type      varchar(50),                 -- conference | workshop | symposium
    url             varchar(2048),
    created_at      timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    updated_at      timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);

CREATE TABLE IF NOT EXISTS public.journals (
    journal_id      varchar(255) PRIMARY KEY,
    name            text NOT NULL,
    abbreviation    varchar(100),
    publisher       text,
    issn            varchar(9),                  -- NNNN-NNNC
    url             varchar(2048),
    created_at      timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    updated_at      timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);

-- One row per paper; paper_id is the 40-hex Semantic Scholar id.
-- Pipeline per paper: crawl (metadata, references, citations) -> pdf -> summary -> Markdown note.
-- markdown_path / generated_at are null until the generator has written `{paper_id}.md`;
-- a note is stale when generated_at < summary_created_at.
CREATE TABLE IF NOT EXISTS public.papers (
    paper_id            varchar(40) PRIMARY KEY,
    title               text NOT NULL,
    abstract            text,
    year                integer CHECK (year BETWEEN 1900 AND 2100),
    citation_count      integer NOT NULL DEFAULT 0 CHECK (citation_count >= 0),
    reference_count     integer NOT NULL DEFAULT 0 CHECK (reference_count >= 0),
    influence_score     double precision,
    crawl_status        varchar(20) NOT NULL DEFAULT 'pending'
                        CHECK (crawl_status IN ('pending', 'running', 'completed', 'failed')),
    pdf_status          varchar(20) NOT NULL DEFAULT 'pending'
                        CHECK (pdf_status IN ('pending', 'running', 'completed', 'failed', 'unavailable')),
    summary_status      varchar(20) NOT NULL DEFAULT 'pending'
                        CHECK (summary_status IN ('pending', 'running', 'completed', 'failed')),
    pdf_url             varchar(2048),
    pdf_hash            varchar(64),                 -- sha256 of the PDF, lowercase hex
    pdf_size            integer,                     -- bytes
    summary             text,
    summary_model       varchar(100),
    summary_created_at  timestamp without time zone,
    venue_id            varchar(255) REFERENCES public.venues (venue_id) ON DELETE SET NULL,
    journal_id          varchar(255) REFERENCES public.journals (journal_id) ON DELETE SET NULL,
    language            varchar(10),
    is_open_access      boolean DEFAULT false,
    created_at          timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    updated_at          timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    last_crawled_at     timestamp without time zone,
    markdown_path       varchar(2048),
    generated_at        timestamp without time zone
);

CREATE INDEX IF NOT EXISTS idx_papers_crawl_status   ON public.papers (crawl_status);
CREATE INDEX IF NOT EXISTS idx_papers_pdf_status     ON public.papers (pdf_status);
CREATE INDEX IF NOT EXISTS idx_papers_summary_status ON public.papers (summary_status);
CREATE INDEX IF NOT EXISTS idx_papers_year           ON public.papers (year);
CREATE INDEX IF NOT EXISTS idx_papers_created_at     ON public.papers (created_at);

CREATE TABLE IF NOT EXISTS public.authors (
    author_id       varchar(255) PRIMARY KEY,    -- Semantic Scholar author id (digits)
    name            text NOT NULL,
    paper_count     integer NOT NULL DEFAULT 0 CHECK (paper_count >= 0),
    citation_count  integer NOT NULL DEFAULT 0 CHECK (citation_count >= 0),
    h_index         integer,
    affiliations    text[],
    homepage_url    varchar(2048),
    orcid           varchar(19),                 -- 0000-0000-0000-000X
    created_at      timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    updated_at      timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);

-- Authorship; position is the author order, 1 = first author.
CREATE TABLE IF NOT EXISTS public.paper_authors (
    paper_id    varchar(40)  NOT NULL REFERENCES public.papers (paper_id) ON DELETE CASCADE,
    author_id   varchar(255) NOT NULL REFERENCES public.authors (author_id) ON DELETE CASCADE,
    position    integer NOT NULL,
    PRIMARY KEY (paper_id, author_id)
);

CREATE INDEX IF NOT EXISTS idx_paper_authors_author_id ON public.paper_authors (author_id);

-- Citation graph. In both types the source paper cites the target paper; the type records how
-- the edge was found: `reference` from the source's reference list, `citation` from the
-- target's list of citing papers. hop_count is the crawl depth at which it was found.
CREATE TABLE IF NOT EXISTS public.paper_relations (
    id                  serial PRIMARY KEY,
    source_paper_id     varchar(40) NOT NULL REFERENCES public.papers (paper_id) ON DELETE CASCADE,
    target_paper_id     varchar(40) NOT NULL REFERENCES public.papers (paper_id) ON DELETE CASCADE,
    relation_type       varchar(20) NOT NULL CHECK (relation_type IN ('citation', 'reference')),
    hop_count           integer NOT NULL DEFAULT 1 CHECK (hop_count >= 1),
    confidence_score    double precision,
    relevance_score     double precision,
    created_at          timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    CONSTRAINT paper_relations_source_target_type_key
        UNIQUE (source_paper_id, target_paper_id, relation_type),
    CONSTRAINT paper_relations_no_self_reference
        CHECK (source_paper_id <> target_paper_id)
);

CREATE INDEX IF NOT EXISTS idx_paper_relations_target ON public.paper_relations (target_paper_id);

-- RefNet's own per-paper work log (crawl / summarize / generate). Not the refnet-jobs queue.
CREATE TABLE IF NOT EXISTS public.processing_queue (
    id                      serial PRIMARY KEY,
    paper_id                varchar(40) REFERENCES public.papers (paper_id) ON DELETE CASCADE,
    task_type               varchar(20) NOT NULL CHECK (task_type IN ('crawl', 'summarize', 'generate')),
    status                  varchar(20) NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    priority                integer NOT NULL DEFAULT 0 CHECK (priority >= 0),
    error_message           text,
    retry_count             integer NOT NULL DEFAULT 0,
    max_retries             integer NOT NULL DEFAULT 3,
    execution_time_seconds  double precision,
    parameters              jsonb,
    created_at              timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    updated_at              timestamp without time zone NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    started_at              timestamp without time zone,
    completed_at            timestamp without time zone
);

CREATE INDEX IF NOT EXISTS idx_processing_queue_status_task ON public.processing_queue (status, task_type);
CREATE INDEX IF NOT EXISTS idx_processing_queue_paper_id    ON public.processing_queue (paper_id);
CREATE INDEX IF NOT EXISTS idx_processing_queue_completed_at ON public.processing_queue (completed_at);
