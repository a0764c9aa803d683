-- RefNet database fixture: deterministic sample data.
--
-- Run after schema.sql, on EMPTY RefNet tables (it stops with an error otherwise):
--     psql -v ON_ERROR_STOP=1 -f schema.sql -f sample_data.sql
-- Pure SQL (no psql meta-commands, so it can also be sent as one multi-statement string), one
-- transaction, then ANALYZE; loads in about 4 s on a small 2-core machine.
-- Everything is synthetic; institution, venue and journal names are real but only decoration,
-- and ISSNs, ORCID iDs and URLs are made up (URLs other than PDFs point at example.org).
--
-- Determinism: every value is derived from md5/sha256 of a fixed key (pg_temp.u below), not from
-- random(), so the content does not depend on plan or evaluation order. The one exception
-- is time: all timestamps are relative to the load time T (UTC, whole second), so that
-- "last 7 days", "older than 90 days" and "stuck for hours" stay true whenever the fixture
-- is loaded. Two loads give identical rows apart from that shift.
--
-- What it inserts (exact, since it is deterministic):
--   venues 60, journals 40, papers 12,000 (years 1985-2025, median 2017), authors 4,000,
--   paper_authors 42,281 (1-6 per paper, positions 1..n; authors.paper_count, citation_count
--   and h_index are computed from these rows), paper_relations 30,000, processing_queue 5,042.
--
-- The shape of the sample, for tests of the scheduled tasks:
--   * crawl_status: pending 1,188 (not crawled yet, mostly discovered in the last weeks, no
--     last_crawled_at, no pdf/summary work; what collect_new_papers picks), running 187,
--     failed 417, completed 10,208. created_at spans the last 2 years, ~8% in the last 7 days.
--   * pdf_status (crawled papers): unavailable when there is no open-access PDF (pdf_url null),
--     else mostly completed (pdf_hash, pdf_size set), some pending/failed/running.
--     Papers not crawled yet keep the default 'pending'.
--   * summary_status (crawled papers): ~15% pending (what process_pending_summaries picks:
--     crawl_status = 'completed' AND summary_status = 'pending'), running, failed, and
--     completed with summary, summary_model, summary_created_at. Uncrawled papers keep the
--     default 'pending' too, so filter on crawl_status = 'completed'.
--   * Markdown notes: about half of the summarized papers have markdown_path
--     ('{paper_id}.md', relative to the vault) and generated_at. ~15% of those are stale:
--     generated_at < summary_created_at (summary redone after the note was written).
--     generate_markdown_files should pick summary_status = 'completed' AND
--     (generated_at IS NULL OR generated_at < summary_created_at).
--   * Every timestamp <= T; created_at <= last_crawled_at <= summary_created_at, and
--     updated_at = the latest of a paper's timestamps.
--   * paper_relations: in both types the source cites the target (source is the newer paper);
--     'reference' when found from the crawled source's references, 'citation' when found from
--     the crawled target's citations. Targets follow a long tail (highly cited papers get many).
--   * processing_queue mirrors the paper statuses: completed/failed jobs for completed/failed
--     papers (completed_at = the paper's event time; 1,707 of the 3,200 completed jobs are
--     older than 90 days), a running job for each running crawl/summary (~10% of running jobs
--     stuck past the task's hard time limit: crawl 3600 s, summarize 1800 s, generate 600 s),
--     pending jobs for a subset of the papers waiting for each step; never two pending/running
--     jobs for one paper and task. max_retries: crawl 3, summarize 2, generate 2; failed jobs
--     have retry_count = max_retries and an error_message; ~15% of pending jobs are retries
--     (retry_count 1, error_message of the previous attempt).

BEGIN;

-- Room for the sorts below; SET LOCAL ends with the transaction.
SET LOCAL work_mem = '64MB';
SET LOCAL jit = off;

-- Refuse to run on a non-empty database: the generated keys would collide.
DO $guard$
BEGIN
    IF EXISTS (SELECT 1 FROM public.papers) OR EXISTS (SELECT 1 FROM public.authors)
       OR EXISTS (SELECT 1 FROM public.venues) OR EXISTS (SELECT 1 FROM public.journals)
       OR EXISTS (SELECT 1 FROM public.processing_queue) THEN
        RAISE EXCEPTION 'sample_data.sql expects empty RefNet tables; the sample is already loaded or the database holds real data';
    END IF;
END
$guard$;

-- ---------------------------------------------------------------------------------------------
-- Helpers (session-temporary, dropped before COMMIT).
-- u(key): uniform in [0, 1), a pure function of key (52 bits of md5).
CREATE FUNCTION pg_temp.u(k text) RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT ('x' || substr(md5(k), 1, 13))::bit(52)::bigint / 4503599627370496::double precision $$;

-- pick(list, key): one element of list, chosen by key.
CREATE FUNCTION pg_temp.pick(a text[], k text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT a[1 + floor(pg_temp.u(k) * cardinality(a))::int] $$;

-- t0(): the load time T, UTC, as timestamp without time zone (constant within the transaction).
CREATE FUNCTION pg_temp.t0() RETURNS timestamp without time zone
    LANGUAGE sql STABLE
    AS $$ SELECT date_trunc('second', now() AT TIME ZONE 'UTC') $$;

-- ---------------------------------------------------------------------------------------------
-- Venues (60) and journals (40). Ids are UUIDs derived from the ordinal.
INSERT INTO public.venues (venue_id, name, short_name, venue_type, url, created_at, updated_at)
SELECT md5('refnet-sample-venue:' || v.i)::uuid::text,
       v.name, v.short_name, v.venue_type,
       'https://example.org/venues/' || lower(regexp_replace(v.short_name, '[^A-Za-z0-9]', '', 'g')),
       pg_temp.t0() - interval '800 days' + v.i * interval '1 hour',
       pg_temp.t0() - interval '800 days' + v.i * interval '1 hour'
FROM (VALUES
    (1, 'Conference on Neural Information Processing Systems', 'NeurIPS', 'conference'),
    (2, 'International Conference on Machine Learning', 'ICML', 'conference'),
    (3, 'International Conference on Learning Representations', 'ICLR', 'conference'),
    (4, 'Annual Meeting of the Association for Computational Linguistics', 'ACL', 'conference'),
    (5, 'Conference on Empirical Methods in Natural Language Processing', 'EMNLP', 'conference'),
    (6, 'North American Chapter of the Association for Computational Linguistics', 'NAACL', 'conference'),
    (7, 'Computer Vision and Pattern Recognition', 'CVPR', 'conference'),
    (8, 'International Conference on Computer Vision', 'ICCV', 'conference'),
    (9, 'European Conference on Computer Vision', 'ECCV', 'conference'),
    (10, 'AAAI Conference on Artificial Intelligence', 'AAAI', 'conference'),
    (11, 'International Joint Conference on Artificial Intelligence', 'IJCAI', 'conference'),
    (12, 'Knowledge Discovery and Data Mining', 'KDD', 'conference'),
    (13, 'The Web Conference', 'WWW', 'conference'),
    (14, 'Research and Development in Information Retrieval', 'SIGIR', 'conference'),
    (15, 'Conference on Information and Knowledge Management', 'CIKM', 'conference'),
    (16, 'Web Search and Data Mining', 'WSDM', 'conference'),
    (17, 'ACM SIGMOD Conference on Management of Data', 'SIGMOD', 'conference'),
    (18, 'Very Large Data Bases Conference', 'VLDB', 'conference'),
    (19, 'IEEE International Conference on Data Engineering', 'ICDE', 'conference'),
    (20, 'Operating Systems Design and Implementation', 'OSDI', 'symposium'),
    (21, 'Symposium on Operating Systems Principles', 'SOSP', 'symposium'),
    (22, 'Networked Systems Design and Implementation', 'NSDI', 'symposium'),
    (23, 'European Conference on Computer Systems', 'EuroSys', 'conference'),
    (24, 'USENIX Annual Technical Conference', 'USENIX ATC', 'conference'),
    (25, 'Conference on File and Storage Technologies', 'FAST', 'conference'),
    (26, 'ACM SIGCOMM Conference', 'SIGCOMM', 'conference'),
    (27, 'International Conference on Mobile Computing and Networking', 'MobiCom', 'conference'),
    (28, 'Conference on Human Factors in Computing Systems', 'CHI', 'conference'),
    (29, 'Symposium on User Interface Software and Technology', 'UIST', 'symposium'),
    (30, 'Computer Supported Cooperative Work', 'CSCW', 'conference'),
    (31, 'International Conference on Software Engineering', 'ICSE', 'conference'),
    (32, 'Foundations of Software Engineering', 'FSE', 'conference'),
    (33, 'Automated Software Engineering', 'ASE', 'conference'),
    (34, 'Programming Language Design and Implementation', 'PLDI', 'conference'),
    (35, 'Symposium on Principles of Programming Languages', 'POPL', 'symposium'),
    (36, 'Object-Oriented Programming, Systems, Languages, and Applications', 'OOPSLA', 'conference'),
    (37, 'International Symposium on Computer Architecture', 'ISCA', 'symposium'),
    (38, 'International Symposium on Microarchitecture', 'MICRO', 'symposium'),
    (39, 'Architectural Support for Programming Languages and Operating Systems', 'ASPLOS', 'conference'),
    (40, 'High-Performance Computer Architecture', 'HPCA', 'symposium'),
    (41, 'International Conference for High Performance Computing, Networking, Storage and Analysis', 'SC', 'conference'),
    (42, 'Symposium on the Theory of Computing', 'STOC', 'symposium'),
    (43, 'Symposium on Foundations of Computer Science', 'FOCS', 'symposium'),
    (44, 'Symposium on Discrete Algorithms', 'SODA', 'symposium'),
    (45, 'Conference on Computer and Communications Security', 'CCS', 'conference'),
    (46, 'USENIX Security Symposium', 'USENIX Security', 'symposium'),
    (47, 'IEEE Symposium on Security and Privacy', 'S&P', 'symposium'),
    (48, 'Network and Distributed System Security Symposium', 'NDSS', 'symposium'),
    (49, 'IEEE International Conference on Robotics and Automation', 'ICRA', 'conference'),
    (50, 'Intelligent Robots and Systems', 'IROS', 'conference'),
    (51, 'International Conference on Computational Linguistics', 'COLING', 'conference'),
    (52, 'Interspeech', 'Interspeech', 'conference'),
    (53, 'IEEE International Conference on Acoustics, Speech and Signal Processing', 'ICASSP', 'conference'),
    (54, 'Medical Image Computing and Computer-Assisted Intervention', 'MICCAI', 'conference'),
    (55, 'Intelligent Systems for Molecular Biology', 'ISMB', 'conference'),
    (56, 'ACM/IEEE Joint Conference on Digital Libraries', 'JCDL', 'conference'),
    (57, 'European Conference on Information Retrieval', 'ECIR', 'conference'),
    (58, 'Conference on Uncertainty in Artificial Intelligence', 'UAI', 'conference'),
    (59, 'International Conference on Artificial Intelligence and Statistics', 'AISTATS', 'conference'),
    (60, 'Workshop on Scholarly Document Processing', 'SDP', 'workshop')
) AS v(i, name, short_name, venue_type);

INSERT INTO public.journals (journal_id, name, abbreviation, publisher, issn, url, created_at, updated_at)
SELECT md5('refnet-sample-journal:' || j.i)::uuid::text,
       j.name, j.abbreviation, j.publisher,
       -- synthetic ISSN with a valid check digit
       left(d.digits, 4) || '-' || substr(d.digits, 5, 3) || CASE c.check_digit WHEN 10 THEN 'X' ELSE c.check_digit::text END,
       'https://example.org/journals/' || lower(regexp_replace(j.abbreviation, '[^A-Za-z0-9]', '', 'g')),
       pg_temp.t0() - interval '800 days' + j.i * interval '1 hour',
       pg_temp.t0() - interval '800 days' + j.i * interval '1 hour'
FROM (VALUES
    (1, 'Nature', 'Nature', 'Springer Nature'),
    (2, 'Science', 'Science', 'AAAS'),
    (3, 'Proceedings of the National Academy of Sciences', 'PNAS', 'National Academy of Sciences'),
    (4, 'Journal of Machine Learning Research', 'JMLR', 'JMLR'),
    (5, 'IEEE Transactions on Pattern Analysis and Machine Intelligence', 'TPAMI', 'IEEE'),
    (6, 'International Journal of Computer Vision', 'IJCV', 'Springer'),
    (7, 'Transactions of the Association for Computational Linguistics', 'TACL', 'MIT Press'),
    (8, 'Computational Linguistics', 'CL', 'MIT Press'),
    (9, 'Artificial Intelligence', 'AIJ', 'Elsevier'),
    (10, 'Machine Learning', 'MLJ', 'Springer'),
    (11, 'Neural Computation', 'Neural Comput.', 'MIT Press'),
    (12, 'Neural Networks', 'Neural Netw.', 'Elsevier'),
    (13, 'Pattern Recognition', 'Pattern Recognit.', 'Elsevier'),
    (14, 'Information Sciences', 'Inf. Sci.', 'Elsevier'),
    (15, 'Knowledge-Based Systems', 'KBS', 'Elsevier'),
    (16, 'Expert Systems with Applications', 'ESWA', 'Elsevier'),
    (17, 'IEEE Transactions on Knowledge and Data Engineering', 'TKDE', 'IEEE'),
    (18, 'ACM Transactions on Information Systems', 'TOIS', 'ACM'),
    (19, 'ACM Transactions on Database Systems', 'TODS', 'ACM'),
    (20, 'The VLDB Journal', 'VLDBJ', 'Springer'),
    (21, 'Communications of the ACM', 'CACM', 'ACM'),
    (22, 'ACM Computing Surveys', 'CSUR', 'ACM'),
    (23, 'Journal of the ACM', 'JACM', 'ACM'),
    (24, 'SIAM Journal on Computing', 'SICOMP', 'SIAM'),
    (25, 'IEEE Transactions on Information Theory', 'TIT', 'IEEE'),
    (26, 'IEEE Transactions on Signal Processing', 'TSP', 'IEEE'),
    (27, 'IEEE Transactions on Neural Networks and Learning Systems', 'TNNLS', 'IEEE'),
    (28, 'IEEE Transactions on Image Processing', 'TIP', 'IEEE'),
    (29, 'Bioinformatics', 'Bioinformatics', 'Oxford University Press'),
    (30, 'Nucleic Acids Research', 'NAR', 'Oxford University Press'),
    (31, 'PLOS ONE', 'PLOS ONE', 'PLOS'),
    (32, 'PLOS Computational Biology', 'PLOS Comput. Biol.', 'PLOS'),
    (33, 'Scientific Reports', 'Sci. Rep.', 'Springer Nature'),
    (34, 'Nature Communications', 'Nat. Commun.', 'Springer Nature'),
    (35, 'Nature Machine Intelligence', 'Nat. Mach. Intell.', 'Springer Nature'),
    (36, 'Journal of the Association for Information Science and Technology', 'JASIST', 'Wiley'),
    (37, 'Scientometrics', 'Scientometrics', 'Springer'),
    (38, 'Journal of Informetrics', 'J. Informetr.', 'Elsevier'),
    (39, 'Quantitative Science Studies', 'QSS', 'MIT Press'),
    (40, 'Information Processing & Management', 'IP&M', 'Elsevier')
) AS j(i, name, abbreviation, publisher)
CROSS JOIN LATERAL (SELECT lpad(floor(pg_temp.u('issn:' || j.i) * 1e7)::bigint::text, 7, '0') AS digits) d
CROSS JOIN LATERAL (
    SELECT (11 - (SELECT sum(substr(d.digits, k, 1)::int * (9 - k)) FROM generate_series(1, 7) k) % 11) % 11 AS check_digit
) c;

-- ---------------------------------------------------------------------------------------------
-- Papers, step 1: the numbers (statuses, years, counts, timestamps) in a scratch table _p.
CREATE TEMP TABLE _p ON COMMIT DROP AS
WITH b AS MATERIALIZED (
    SELECT n,
           left(encode(sha256(convert_to('refnet-sample-paper:' || n, 'UTF8')), 'hex'), 40) AS paper_id,
           -- 1985..2025: truncated exponential age (publications grow ~8% a year), median ~2017
           2025 - floor(-ln(1 - pg_temp.u('year:' || n) * (1 - exp(-41 * 0.08))) / 0.08)::int AS year,
           pg_temp.u('crawl:' || n) AS u_crawl,
           pg_temp.u('pdf:' || n) AS u_pdf,
           pg_temp.u('summary:' || n) AS u_summary,
           pg_temp.u('age:' || n) AS u_age
    FROM generate_series(1, 12000) AS n
), s1 AS MATERIALIZED (
    SELECT b.*,
           CASE WHEN u_crawl < 0.100 THEN 'pending'
                WHEN u_crawl < 0.115 THEN 'running'
                WHEN u_crawl < 0.150 THEN 'failed'
                ELSE 'completed' END AS crawl_status
    FROM b
), s2 AS MATERIALIZED (
    SELECT s1.*,
           crawl_status = 'completed'
               AND pg_temp.u('open-access:' || n) < 0.35 + 0.40 * (year - 1985) / 40.0 AS has_pdf_url,
           pg_temp.u('abstract:' || n) >= CASE WHEN crawl_status = 'completed' THEN 0.05 ELSE 0.40 END AS has_abstract,
           -- created over the last two years, ~5% in the last 7 days; papers still waiting for
           -- their crawl were mostly discovered in the last weeks
           pg_temp.t0() - make_interval(secs => greatest(300, 86400 *
               CASE WHEN crawl_status = 'pending' THEN 60 * power(u_age, 2)
                    WHEN pg_temp.u('recent:' || n) < 0.05 THEN 7 * u_age
                    ELSE 7 + 723 * u_age END)) AS created_at
    FROM s1
), s3 AS MATERIALIZED (
    SELECT s2.*,
           CASE WHEN crawl_status <> 'completed' THEN 'pending'
                WHEN NOT has_pdf_url THEN 'unavailable'
                WHEN u_pdf < 0.78 THEN 'completed'
                WHEN u_pdf < 0.91 THEN 'pending'
                WHEN u_pdf < 0.97 THEN 'failed'
                ELSE 'running' END AS pdf_status,
           CASE WHEN crawl_status IN ('completed', 'failed')
                THEN created_at + (pg_temp.t0() - created_at)
                                  * (0.0005 + 0.05 * power(pg_temp.u('crawled-at:' || n), 3)) END AS last_crawled_at
    FROM s2
), s4 AS MATERIALIZED (
    SELECT s3.*,
           CASE WHEN crawl_status <> 'completed' THEN 'pending'
                WHEN u_summary < 0.150 THEN 'pending'
                WHEN u_summary < 0.165 THEN 'running'
                WHEN u_summary < 0.200 THEN 'failed'
                WHEN NOT has_abstract AND pdf_status <> 'completed' THEN 'failed'   -- nothing to summarize
                ELSE 'completed' END AS summary_status
    FROM s3
), s5 AS MATERIALIZED (
    SELECT s4.*,
           CASE WHEN summary_status = 'completed'
                THEN last_crawled_at + (pg_temp.t0() - last_crawled_at)
                                       * (0.002 + 0.3 * power(pg_temp.u('summarized-at:' || n), 2)) END AS summary_created_at,
           summary_status = 'completed' AND pg_temp.u('note:' || n) < 0.5 AS has_note,
           pg_temp.u('stale:' || n) < 0.15 AS stale_note
    FROM s4
), s6 AS MATERIALIZED (
    SELECT s5.*,
           CASE WHEN has_note AND stale_note      -- written from an earlier summary
                THEN last_crawled_at + (summary_created_at - last_crawled_at) * (0.2 + 0.6 * pg_temp.u('generated-at:' || n))
                WHEN has_note
                THEN summary_created_at + (pg_temp.t0() - summary_created_at) * (0.001 + 0.5 * pg_temp.u('generated-at:' || n))
           END AS generated_at
    FROM s5
)
SELECT n, paper_id, year, crawl_status, pdf_status, summary_status, has_pdf_url, has_abstract,
       has_note, has_note AND stale_note AS stale_note,
       created_at, last_crawled_at, summary_created_at, generated_at,
       greatest(created_at, last_crawled_at, summary_created_at, generated_at,
                CASE WHEN 'running' IN (crawl_status, pdf_status, summary_status)
                     THEN pg_temp.t0() - interval '2 hours' * pg_temp.u('busy:' || n) END) AS updated_at,
       -- long-tailed citation counts, older papers have had more time
       floor(3 * (power(1 - pg_temp.u('citations:' || n), -0.9) - 1) * (1 + (2025 - year) / 8.0))::int AS citation_count,
       CASE WHEN crawl_status = 'completed'
            THEN 5 + floor(55 * (pg_temp.u('refs1:' || n) + pg_temp.u('refs2:' || n)) / 2)::int
            ELSE 0 END AS reference_count,
       CASE WHEN pg_temp.u('venue-or-journal:' || n) < 0.50
            THEN 1 + floor(60 * power(pg_temp.u('venue:' || n), 1.7))::int END AS venue_no,
       CASE WHEN pg_temp.u('venue-or-journal:' || n) BETWEEN 0.50 AND 0.85
            THEN 1 + floor(40 * power(pg_temp.u('journal:' || n), 1.5))::int END AS journal_no
FROM s6;

CREATE UNIQUE INDEX ON _p (n);

-- Papers, step 2: text from word lists, then the insert.
INSERT INTO public.papers (
    paper_id, title, abstract, year, citation_count, reference_count, influence_score,
    crawl_status, pdf_status, summary_status, pdf_url, pdf_hash, pdf_size,
    summary, summary_model, summary_created_at, venue_id, journal_id, language, is_open_access,
    created_at, updated_at, last_crawled_at, markdown_path, generated_at)
WITH w AS (
    SELECT
        ARRAY['Efficient', 'Scalable', 'Robust', 'Self-Supervised', 'Contrastive', 'Hierarchical', 'Sparse',
              'Multi-Modal', 'Federated', 'Interpretable', 'Probabilistic', 'Adaptive', 'Unsupervised',
              'Few-Shot', 'Zero-Shot', 'Lightweight', 'Distributed', 'Bayesian', 'Causal', 'Differentiable',
              'Incremental', 'Graph-Based', 'Semi-Supervised', 'Cross-Lingual', 'Privacy-Preserving',
              'Energy-Efficient', 'Provably Correct', 'Fast', 'Parameter-Efficient', 'Explainable'] AS adj,
        ARRAY['Neural Networks', 'Support Vector Machines', 'Hidden Markov Models', 'Decision Trees',
              'Kernel Methods', 'Bayesian Networks', 'Genetic Algorithms', 'Conditional Random Fields',
              'Topic Models', 'Boosted Ensembles', 'Relational Databases', 'B-Trees', 'Logic Programs',
              'Expert Systems', 'Markov Random Fields', 'Case-Based Reasoning', 'Fuzzy Rules',
              'Bloom Filters', 'Matrix Factorization', 'Random Forests'] AS classic,
        ARRAY['Transformers', 'Graph Neural Networks', 'Large Language Models', 'Diffusion Models',
              'Vision Transformers', 'Contrastive Embeddings', 'Mixture-of-Experts Models',
              'Retrieval-Augmented Generation', 'Neural Radiance Fields', 'Prompt Tuning',
              'Knowledge Graph Embeddings', 'Variational Autoencoders', 'Generative Adversarial Networks',
              'Dense Retrievers', 'State Space Models', 'Instruction-Tuned Models', 'Attention Mechanisms',
              'Graph Transformers', 'Sparse Autoencoders', 'Low-Rank Adapters'] AS modern,
        ARRAY['Citation Recommendation', 'Machine Translation', 'Image Segmentation', 'Question Answering',
              'Document Summarization', 'Entity Linking', 'Link Prediction', 'Anomaly Detection',
              'Protein Structure Prediction', 'Speech Recognition', 'Code Generation',
              'Scientific Claim Verification', 'Named Entity Recognition', 'Object Detection',
              'Time Series Forecasting', 'Drug Discovery', 'Query Optimization', 'Recommendation',
              'Sentiment Analysis', 'Information Extraction', 'Author Disambiguation', 'Community Detection',
              'Text Classification', 'Relation Extraction', 'Dialogue Generation', 'Image Captioning',
              'Keyphrase Extraction', 'Fact Checking', 'Semantic Parsing', 'Reviewer Assignment'] AS task,
        ARRAY['Scientific Literature', 'Medical Imaging', 'Social Networks', 'Low-Resource Languages',
              'Edge Devices', 'Large-Scale Databases', 'Autonomous Driving', 'Genomics', 'Legal Documents',
              'E-Commerce', 'Citation Networks', 'Clinical Notes', 'Remote Sensing', 'Source Code',
              'Financial Markets', 'Academic Search Engines', 'Scholarly Knowledge Graphs',
              'Multilingual Corpora', 'Robotics', 'Materials Science', 'Patent Documents', 'News Streams',
              'Electronic Health Records', 'Open Educational Resources'] AS domain,
        ARRAY['Cite', 'Graph', 'Sci', 'Ref', 'Hop', 'Deep', 'Sparse', 'Meta', 'Fed', 'Proto', 'Omni',
              'Link', 'Text', 'Multi', 'Neuro', 'Hyper', 'Paper', 'Lex', 'Span', 'Trans'] AS mpre,
        ARRAY['Former', 'Net', 'BERT', 'GNN', 'Rank', 'Flow', 'Mix', 'Lens', 'Walk', 'Diff', 'Align',
              'Prompt', 'Match', 'Trace', 'Fuse', 'Scope'] AS msuf,
        ARRAY['accuracy', 'F1', 'recall@10', 'nDCG@10', 'BLEU', 'ROUGE-L', 'mean average precision',
              'AUC', 'exact match', 'top-1 accuracy'] AS metric,
        ARRAY['noisy supervision', 'long-range dependencies', 'distribution shift', 'label scarcity',
              'high computational cost', 'class imbalance', 'sparse interactions', 'long documents',
              'out-of-vocabulary terms', 'error propagation'] AS challenge,
        ARRAY['jointly models local and global structure',
              'learns transferable representations from unlabeled data',
              'exploits the citation graph as weak supervision',
              'combines retrieval with lightweight re-ranking',
              'decomposes the problem into tractable subproblems',
              'adapts to new domains with a handful of labelled examples',
              'reduces memory usage through structured sparsity',
              'incorporates uncertainty estimates into training',
              'aligns representations across modalities',
              'distils a large teacher model into a compact student'] AS verb,
        ARRAY['Robustness', 'Generalization', 'Calibration', 'Sample Complexity', 'Limits',
              'Convergence', 'Expressive Power'] AS property,
        ARRAY['Evaluation is limited to English-language data.',
              'The method needs a large pre-trained model at inference time.',
              'The gains shrink on the largest dataset.',
              'No ablation of the main design choice is reported.',
              'Hyper-parameters appear to be tuned on the test distribution.',
              'Runtime is not compared with the baselines.'] AS limitation,
        ARRAY['zh', 'de', 'ja', 'fr', 'es', 'ko', 'pt'] AS other_lang
), t AS MATERIALIZED (
    SELECT p.*,
           pg_temp.pick(w.adj, 'adj:' || p.n) AS adj,
           CASE WHEN p.year < 2010 OR pg_temp.u('era:' || p.n) < 0.25
                THEN pg_temp.pick(w.classic, 'noun:' || p.n)
                ELSE pg_temp.pick(w.modern, 'noun:' || p.n) END AS noun,
           pg_temp.pick(w.task, 'task:' || p.n) AS task,
           pg_temp.pick(w.domain, 'domain:' || p.n) AS domain,
           pg_temp.pick(w.mpre, 'mpre:' || p.n) || pg_temp.pick(w.msuf, 'msuf:' || p.n) AS method,
           pg_temp.pick(w.metric, 'metric:' || p.n) AS metric,
           pg_temp.pick(w.challenge, 'challenge:' || p.n) AS challenge,
           pg_temp.pick(w.verb, 'verb:' || p.n) AS verb,
           pg_temp.pick(w.property, 'property:' || p.n) AS property,
           pg_temp.pick(w.limitation, 'limitation:' || p.n) AS limitation,
           CASE WHEN pg_temp.u('lang:' || p.n) < 0.93 THEN 'en' ELSE pg_temp.pick(w.other_lang, 'other-lang:' || p.n) END AS language,
           2 + floor(5 * pg_temp.u('datasets:' || p.n))::int AS n_datasets,
           round((0.4 + 12 * power(pg_temp.u('gain:' || p.n), 2))::numeric, 1) AS gain,
           floor(12 * pg_temp.u('title-pattern:' || p.n))::int AS pattern
    FROM _p p CROSS JOIN w
)
SELECT
    t.paper_id,
    CASE t.pattern
        WHEN 0 THEN t.method || ': ' || t.adj || ' ' || t.noun || ' for ' || t.task
        WHEN 1 THEN t.adj || ' ' || t.noun || ' for ' || t.task
        WHEN 2 THEN 'Towards ' || t.adj || ' ' || t.task || ' in ' || t.domain
        WHEN 3 THEN t.task || ' with ' || t.noun || ': An Empirical Study on ' || t.domain
        WHEN 4 THEN 'On the ' || t.property || ' of ' || t.adj || ' ' || t.noun || ' for ' || t.task
        WHEN 5 THEN 'A Survey of ' || t.noun || ' for ' || t.task || ' in ' || t.domain
        WHEN 6 THEN t.method || ': ' || t.task || ' via ' || t.adj || ' ' || t.noun
        WHEN 7 THEN 'Revisiting ' || t.adj || ' ' || t.noun || ' for ' || t.task
        WHEN 8 THEN t.adj || ' ' || t.task || ' on ' || t.domain || ' with ' || t.noun
        WHEN 9 THEN 'Do ' || t.noun || ' Really Help ' || t.task || ' on ' || t.domain || '?'
        WHEN 10 THEN 'Benchmarking ' || t.noun || ' for ' || t.task || ' in ' || t.domain
        ELSE t.method || ': Scaling ' || t.task || ' to ' || t.domain
    END AS title,
    CASE WHEN t.has_abstract THEN
        t.task || ' is a central problem in work on ' || lower(t.domain) || '. '
        || 'Existing approaches based on ' || lower(t.noun) || ' struggle with ' || t.challenge || '. '
        || 'In this paper we propose ' || t.method || ', a ' || lower(t.adj) || ' method that ' || t.verb || '. '
        || 'Experiments on ' || t.n_datasets || ' benchmark datasets show that ' || t.method || ' improves '
        || t.metric || ' by ' || t.gain || '% over strong baselines'
        || CASE WHEN pg_temp.u('abstract-tail:' || t.n) < 0.5
                THEN ' while using ' || (10 + floor(60 * pg_temp.u('fewer:' || t.n))::int) || '% fewer parameters. '
                ELSE '. ' END
        || CASE WHEN pg_temp.u('code:' || t.n) < 0.4 THEN 'Code and data are publicly available.'
                ELSE 'We also analyse where the gains come from and discuss limitations.' END
    END AS abstract,
    t.year,
    t.citation_count,
    t.reference_count,
    CASE WHEN t.crawl_status = 'completed'
         THEN round((t.citation_count * (0.02 + 0.10 * pg_temp.u('influence:' || t.n)) + pg_temp.u('influence2:' || t.n))::numeric, 3)::double precision
    END AS influence_score,
    t.crawl_status, t.pdf_status, t.summary_status,
    CASE WHEN NOT t.has_pdf_url THEN NULL
         WHEN t.year >= 2008 AND pg_temp.u('arxiv:' || t.n) < 0.7
         THEN 'https://arxiv.org/pdf/' || lpad((t.year % 100)::text, 2, '0')
              || lpad((1 + floor(12 * pg_temp.u('arxiv-month:' || t.n)))::int::text, 2, '0') || '.'
              || lpad(floor(pg_temp.u('arxiv-no:' || t.n) * CASE WHEN t.year >= 2015 THEN 30000 ELSE 9999 END)::int::text,
                      CASE WHEN t.year >= 2015 THEN 5 ELSE 4 END, '0')
              || 'v' || (1 + floor(3 * power(pg_temp.u('arxiv-v:' || t.n), 2)))::int || '.pdf'
         ELSE 'https://pdfs.semanticscholar.org/' || substr(t.paper_id, 1, 4) || '/' || substr(t.paper_id, 5) || '.pdf'
    END AS pdf_url,
    CASE WHEN t.pdf_status = 'completed'
         THEN encode(sha256(convert_to('refnet-sample-pdf:' || t.paper_id, 'UTF8')), 'hex') END AS pdf_hash,
    CASE WHEN t.pdf_status = 'completed'
         THEN floor(exp(ln(1000000) + 2.5 * (pg_temp.u('pdf-size1:' || t.n) + pg_temp.u('pdf-size2:' || t.n) - 1)))::int END AS pdf_size,
    CASE WHEN t.summary_status = 'completed' THEN
        '**Problem.** The paper studies ' || lower(t.task) || ' for ' || lower(t.domain) || ', where '
        || t.challenge || ' limits existing ' || lower(t.noun) || '.' || E'\n\n'
        || '**Approach.** ' || t.method || ' is a ' || lower(t.adj) || ' method that ' || t.verb || '.' || E'\n\n'
        || '**Results.** Across ' || t.n_datasets || ' benchmarks it improves ' || t.metric || ' by '
        || t.gain || '% over the strongest baseline.' || E'\n\n'
        || '**Limitations.** ' || t.limitation
    END AS summary,
    CASE WHEN t.summary_status <> 'completed' THEN NULL
         WHEN t.summary_created_at < pg_temp.t0() - interval '365 days'
         THEN pg_temp.pick(ARRAY['gpt-3.5-turbo', 'gpt-4', 'claude-2.1'], 'model:' || t.n)
         ELSE pg_temp.pick(ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-3-5-sonnet-20241022', 'claude-3-haiku-20240307'], 'model:' || t.n)
    END AS summary_model,
    t.summary_created_at,
    md5('refnet-sample-venue:' || t.venue_no)::uuid::text AS venue_id,       -- null when venue_no is null
    md5('refnet-sample-journal:' || t.journal_no)::uuid::text AS journal_id,
    t.language,
    t.has_pdf_url AS is_open_access,
    t.created_at, t.updated_at, t.last_crawled_at,
    CASE WHEN t.has_note THEN t.paper_id || '.md' END AS markdown_path,
    t.generated_at
FROM t
ORDER BY t.n;

-- ---------------------------------------------------------------------------------------------
-- Authorship in a scratch table _pa: 1-6 authors per paper; the lead author is drawn with a
-- long tail (a few prolific authors), co-authors mostly from the lead's neighbourhood (a "lab").
CREATE TEMP TABLE _pa ON COMMIT DROP AS
WITH k0 AS MATERIALIZED (
    SELECT n, pg_temp.u('n-authors:' || n) AS x,
           1 + floor(4000 * power(pg_temp.u('lead:' || n), 1.4))::int AS lead
    FROM _p
), k AS MATERIALIZED (
    SELECT n, lead,
           CASE WHEN x < 0.08 THEN 1 WHEN x < 0.25 THEN 2 WHEN x < 0.50 THEN 3
                WHEN x < 0.72 THEN 4 WHEN x < 0.87 THEN 5 ELSE 6 END AS n_authors
    FROM k0
), c AS MATERIALIZED (
    SELECT k.n, j,
           CASE WHEN j = 1 THEN lead
                WHEN pg_temp.u('co-near:' || n || ':' || j) < 0.6
                THEN 1 + (lead - 1 + floor(61 * pg_temp.u('co-offset:' || n || ':' || j))::int - 30 + 4000) % 4000
                ELSE 1 + floor(4000 * power(pg_temp.u('co:' || n || ':' || j), 1.4))::int END AS a
    FROM k CROSS JOIN LATERAL generate_series(1, k.n_authors) AS j
), d AS (
    SELECT DISTINCT ON (n, a) n, a, j FROM c ORDER BY n, a, j
)
SELECT n, a, row_number() OVER (PARTITION BY n ORDER BY j)::int AS position FROM d;

-- Authors, with paper_count / citation_count / h_index computed from the sample itself.
INSERT INTO public.authors (author_id, name, paper_count, citation_count, h_index, affiliations,
                            homepage_url, orcid, created_at, updated_at)
WITH w AS (
    SELECT
        ARRAY['Akira', 'Yuki', 'Haruto', 'Sakura', 'Kenji', 'Hiroshi', 'Aiko', 'Takumi', 'Yui', 'Wei', 'Li',
              'Xin', 'Jun', 'Chen', 'Hao', 'Min-jun', 'Ji-woo', 'Seo-yeon', 'Arjun', 'Priya', 'Rahul', 'Ananya',
              'Vikram', 'Mohammed', 'Fatima', 'Omar', 'Layla', 'Youssef', 'James', 'Mary', 'John', 'Emily',
              'Michael', 'Sarah', 'David', 'Laura', 'Daniel', 'Anna', 'Thomas', 'Sophie', 'Lukas', 'Lena',
              'Pierre', 'Camille', 'Giulia', 'Marco', 'Sofia', 'Alejandro', 'Lucia', 'Mateo', 'Valentina',
              'Ivan', 'Olga', 'Dmitri', 'Elena', 'Nikos', 'Maria', 'Lars', 'Ingrid', 'Jan', 'Eva', 'Tomasz',
              'Agnieszka', 'Ahmet', 'Zeynep', 'Kwame', 'Amara', 'Chinedu', 'Ngozi', 'Diego', 'Camila', 'Noah',
              'Emma', 'Oliver', 'Mia', 'Minh', 'Linh'] AS first_name,
        ARRAY['Tanaka', 'Suzuki', 'Sato', 'Takahashi', 'Watanabe', 'Ito', 'Yamamoto', 'Nakamura', 'Kobayashi',
              'Kato', 'Wang', 'Li', 'Zhang', 'Liu', 'Chen', 'Yang', 'Huang', 'Zhao', 'Wu', 'Zhou', 'Kim', 'Lee',
              'Park', 'Choi', 'Jung', 'Sharma', 'Patel', 'Gupta', 'Singh', 'Kumar', 'Iyer', 'Reddy', 'Haddad',
              'Nasser', 'Khalil', 'Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis',
              'Martinez', 'Wilson', 'Anderson', 'Taylor', 'Thomas', 'Moore', 'Martin', 'Mueller', 'Schmidt',
              'Schneider', 'Fischer', 'Weber', 'Meyer', 'Dubois', 'Bernard', 'Moreau', 'Laurent', 'Rossi',
              'Russo', 'Bianchi', 'Romano', 'Fernandez', 'Lopez', 'Gonzalez', 'Rodriguez', 'Perez', 'Ivanov',
              'Petrov', 'Smirnov', 'Novak', 'Kowalski', 'Nowak', 'Jensen', 'Nielsen', 'Andersson', 'Johansson',
              'Yilmaz', 'Kaya', 'Okafor', 'Mensah', 'Silva', 'Santos', 'Oliveira', 'Cohen', 'Levi', 'Nguyen',
              'Tran'] AS last_name,
        ARRAY['University of Tokyo', 'Kyoto University', 'Osaka University', 'Tokyo Institute of Technology',
              'RIKEN AIP', 'National Institute of Informatics', 'Massachusetts Institute of Technology',
              'Stanford University', 'Carnegie Mellon University', 'UC Berkeley', 'University of Washington',
              'Cornell University', 'Princeton University', 'Harvard University', 'University of Toronto',
              'Mila', 'McGill University', 'Tsinghua University', 'Peking University',
              'Shanghai Jiao Tong University', 'KAIST', 'Seoul National University',
              'National University of Singapore', 'ETH Zurich', 'EPFL', 'University of Oxford',
              'University of Cambridge', 'University of Edinburgh', 'Technical University of Munich',
              'Max Planck Institute for Informatics', 'INRIA', 'University of Amsterdam',
              'University of Melbourne', 'Google Research', 'Microsoft Research', 'Meta AI',
              'Allen Institute for AI', 'IBM Research', 'NVIDIA Research', 'DeepMind'] AS institution
), agg AS (
    SELECT pa.a, count(*)::int AS paper_count, sum(p.citation_count)::int AS citation_count,
           min(p.created_at) AS first_seen, max(p.updated_at) AS last_seen
    FROM _pa pa JOIN _p p USING (n)
    GROUP BY pa.a
), h AS (
    SELECT a, max(r)::int AS h_index
    FROM (SELECT pa.a, p.citation_count,
                 row_number() OVER (PARTITION BY pa.a ORDER BY p.citation_count DESC) AS r
          FROM _pa pa JOIN _p p USING (n)) ranked
    WHERE citation_count >= r
    GROUP BY a
), orcid AS (
    -- 15 digits plus the ISO 7064 MOD 11-2 check character, as in a real ORCID iD
    SELECT a, digits,
           (12 - (SELECT sum(substr(digits, i, 1)::int * (2 ^ (16 - i))::bigint)
                  FROM generate_series(1, 15) i) % 11) % 11 AS check_digit
    FROM (SELECT a, '0000000' || lpad(floor(pg_temp.u('orcid:' || a) * 1e8)::bigint::text, 8, '0') AS digits
          FROM generate_series(1, 4000) a) dd
)
SELECT (1741101 + a * 7919)::text AS author_id,
       pg_temp.pick(w.first_name, 'first:' || a)
           || CASE WHEN pg_temp.u('middle:' || a) < 0.2
                   THEN ' ' || substr('ABCDEFGHJKLMNPRSTW', 1 + floor(18 * pg_temp.u('initial:' || a))::int, 1) || '.'
                   ELSE '' END
           || ' ' || pg_temp.pick(w.last_name, 'last:' || a) AS name,
       coalesce(agg.paper_count, 0),
       coalesce(agg.citation_count, 0),
       coalesce(h.h_index, 0),
       CASE WHEN pg_temp.u('affiliated:' || a) < 0.45 THEN ARRAY[pg_temp.pick(w.institution, 'inst1:' || a)]
            WHEN pg_temp.u('affiliated:' || a) < 0.60 THEN ARRAY[pg_temp.pick(w.institution, 'inst1:' || a),
                                                                 pg_temp.pick(w.institution, 'inst2:' || a)]
       END AS affiliations,
       CASE WHEN pg_temp.u('homepage:' || a) < 0.15
            THEN 'https://example.org/people/' || lower(pg_temp.pick(w.last_name, 'last:' || a)) || '-' || a END,
       CASE WHEN pg_temp.u('has-orcid:' || a) < 0.35
            THEN substr(o.digits, 1, 4) || '-' || substr(o.digits, 5, 4) || '-' || substr(o.digits, 9, 4) || '-' || substr(o.digits, 13, 3)
                 || CASE o.check_digit WHEN 10 THEN 'X' ELSE o.check_digit::text END END AS orcid,
       coalesce(agg.first_seen, pg_temp.t0() - interval '700 days' * pg_temp.u('author-seen:' || a)),
       coalesce(agg.last_seen, pg_temp.t0() - interval '700 days' * pg_temp.u('author-seen:' || a))
FROM generate_series(1, 4000) AS a
CROSS JOIN w
LEFT JOIN agg USING (a)
LEFT JOIN h USING (a)
JOIN orcid o USING (a)
ORDER BY a;

INSERT INTO public.paper_authors (paper_id, author_id, position)
SELECT p.paper_id, (1741101 + pa.a * 7919)::text, pa.position
FROM _pa pa JOIN _p p USING (n)
ORDER BY pa.n, pa.position;

-- ---------------------------------------------------------------------------------------------
-- Citation graph: 30,000 edges. Each candidate pairs a crawled paper A with a paper B drawn
-- with a long tail over citation rank; the newer of the two is the source (it cites the other).
CREATE TEMP TABLE _cited ON COMMIT DROP AS
SELECT row_number() OVER (ORDER BY citation_count DESC, n)::int AS r, n FROM _p;
CREATE UNIQUE INDEX ON _cited (r);

CREATE TEMP TABLE _crawled ON COMMIT DROP AS
SELECT row_number() OVER (ORDER BY n)::int AS r, n FROM _p WHERE crawl_status = 'completed';
CREATE UNIQUE INDEX ON _crawled (r);

INSERT INTO public.paper_relations (source_paper_id, target_paper_id, relation_type, hop_count,
                                    confidence_score, relevance_score, created_at)
WITH cand AS MATERIALIZED (
    SELECT k,
           1 + floor((SELECT count(*) FROM _crawled) * pg_temp.u('rel-a:' || k))::int AS ra,
           1 + floor(12000 * power(pg_temp.u('rel-b:' || k), 2.2))::int AS rb,
           pg_temp.u('rel-tie:' || k) < 0.5 AS tie_a_newer
    FROM generate_series(1, 30500) AS k   -- a few are dropped: self-pairs, duplicates
), pairs AS MATERIALIZED (
    SELECT c.k, c.tie_a_newer,
           pa.paper_id AS a_id, pa.year AS a_year, pa.created_at AS a_created, pa.last_crawled_at AS a_crawled,
           pb.paper_id AS b_id, pb.year AS b_year, pb.created_at AS b_created
    FROM cand c
    JOIN _crawled ca ON ca.r = c.ra
    JOIN _cited cb ON cb.r = c.rb
    JOIN _p pa ON pa.n = ca.n
    JOIN _p pb ON pb.n = cb.n
    WHERE ca.n <> cb.n
), oriented AS MATERIALIZED (
    SELECT k,
           CASE WHEN a_newer THEN a_id ELSE b_id END AS source_paper_id,
           CASE WHEN a_newer THEN b_id ELSE a_id END AS target_paper_id,
           CASE WHEN a_newer THEN 'reference' ELSE 'citation' END AS relation_type,
           greatest(a_crawled, a_created, b_created) AS found_after
    FROM (SELECT pairs.*, a_year > b_year OR (a_year = b_year AND tie_a_newer) AS a_newer FROM pairs) x
), dedup AS (
    SELECT DISTINCT ON (source_paper_id, target_paper_id, relation_type) *
    FROM oriented
    ORDER BY source_paper_id, target_paper_id, relation_type, k
), kept AS (
    SELECT * FROM dedup ORDER BY k LIMIT 30000
)
SELECT source_paper_id, target_paper_id, relation_type,
       CASE WHEN u_hop < 0.60 THEN 1 WHEN u_hop < 0.88 THEN 2 ELSE 3 END,
       round((0.5 + 0.5 * sqrt(pg_temp.u('confidence:' || k)))::numeric, 4)::double precision,
       round(pg_temp.u('relevance:' || k)::numeric, 4)::double precision,
       found_after + (pg_temp.t0() - found_after) * (0.01 * pg_temp.u('rel-created:' || k))
FROM (SELECT kept.*, pg_temp.u('hop:' || k) AS u_hop FROM kept) kh
ORDER BY k;

-- ---------------------------------------------------------------------------------------------
-- processing_queue (~5,000 rows), consistent with the paper statuses. For each slice: a pool of
-- papers, the slice size (null = the whole pool), and the time of the event the job stands for.
-- Completed slices prefer recent events (weighted sample), so about half are older than 90 days.
CREATE TEMP TABLE _q ON COMMIT DROP AS
WITH pools AS (
    -- crawl
    SELECT 'crawl' AS task_type, 'completed' AS status, n, last_crawled_at AS event_at, 1500 AS take, 'crawl-done' AS pool
        FROM _p WHERE crawl_status = 'completed'
    UNION ALL SELECT 'crawl', 'failed', n, last_crawled_at, NULL, 'crawl-failed' FROM _p WHERE crawl_status = 'failed'
    UNION ALL SELECT 'crawl', 'running', n, NULL, NULL, 'crawl-running' FROM _p WHERE crawl_status = 'running'
    UNION ALL SELECT 'crawl', 'pending', n, NULL, 300, 'crawl-pending' FROM _p WHERE crawl_status = 'pending'
    -- summarize
    UNION ALL SELECT 'summarize', 'completed', n, summary_created_at, 1000, 'summ-done' FROM _p WHERE summary_status = 'completed'
    UNION ALL SELECT 'summarize', 'failed', n,
                     last_crawled_at + (pg_temp.t0() - last_crawled_at) * pg_temp.u('summ-failed-at:' || n), 300, 'summ-failed'
              FROM _p WHERE crawl_status = 'completed' AND summary_status = 'failed'
    UNION ALL SELECT 'summarize', 'running', n, NULL, NULL, 'summ-running' FROM _p WHERE crawl_status = 'completed' AND summary_status = 'running'
    UNION ALL SELECT 'summarize', 'pending', n, NULL, 250, 'summ-pending' FROM _p WHERE crawl_status = 'completed' AND summary_status = 'pending'
    -- generate
    UNION ALL SELECT 'generate', 'completed', n, generated_at, 700, 'gen-done' FROM _p WHERE has_note
), picked AS MATERIALIZED (
    SELECT task_type, status, n, event_at
    FROM (SELECT pools.*,
                 row_number() OVER (PARTITION BY pool ORDER BY
                     ln(greatest(pg_temp.u('queue:' || pool || ':' || n), 1e-12))
                     / CASE WHEN event_at >= pg_temp.t0() - interval '90 days' THEN 1.0 ELSE 0.2 END DESC, n) AS rn
          FROM pools) x
    WHERE take IS NULL OR rn <= take
    UNION ALL
    -- generate: papers that need a (new) note; disjoint slices for pending / running / failed
    SELECT 'generate',
           CASE WHEN rn <= 150 THEN 'pending' WHEN rn <= 170 THEN 'running' ELSE 'failed' END,
           n,
           CASE WHEN rn > 170 THEN summary_created_at + (pg_temp.t0() - summary_created_at) * pg_temp.u('gen-failed-at:' || n) END
    FROM (SELECT n, summary_created_at,
                 row_number() OVER (ORDER BY pg_temp.u('queue:gen-todo:' || n), n) AS rn
          FROM _p WHERE summary_status = 'completed' AND (NOT has_note OR stale_note)) g
    WHERE rn <= 230
), timed AS MATERIALIZED (
    SELECT pk.*, p.paper_id, p.created_at AS paper_created_at, p.summary_created_at,
           CASE pk.task_type WHEN 'crawl' THEN 3 ELSE 2 END AS max_retries,
           -- seconds of work, per task type
           CASE pk.task_type
               WHEN 'crawl' THEN 2 + 300 * power(pg_temp.u('exec:' || pk.task_type || ':' || pk.n), 3)
               WHEN 'summarize' THEN 8 + 200 * power(pg_temp.u('exec:' || pk.task_type || ':' || pk.n), 2)
               ELSE 0.05 + 2 * power(pg_temp.u('exec:' || pk.task_type || ':' || pk.n), 2) END AS work_secs,
           -- time spent waiting in the queue before starting
           1 + 3600 * power(pg_temp.u('wait:' || pk.task_type || ':' || pk.n), 3) AS wait_secs,
           CASE pk.task_type WHEN 'crawl' THEN 3600 WHEN 'summarize' THEN 1800 ELSE 600 END AS hard_limit,
           CASE pk.task_type WHEN 'crawl' THEN 3300 WHEN 'summarize' THEN 1500 ELSE 540 END AS soft_limit,
           pg_temp.u('job:' || pk.task_type || ':' || pk.status || ':' || pk.n) AS uj
    FROM picked pk JOIN _p p USING (n)
)
SELECT paper_id, task_type, status, n,
       floor(10 * power(pg_temp.u('priority:' || task_type || ':' || n), 4))::int AS priority,
       CASE WHEN status = 'failed' OR (status = 'pending' AND uj < 0.15) THEN
           CASE task_type
               WHEN 'crawl' THEN pg_temp.pick(ARRAY[
                   'HTTPError: 429 Too Many Requests for url: https://api.semanticscholar.org/graph/v1/paper/' || paper_id,
                   'HTTPError: 404 Not Found for url: https://api.semanticscholar.org/graph/v1/paper/' || paper_id,
                   'ReadTimeout: HTTPSConnectionPool(host=''api.semanticscholar.org'', port=443): Read timed out. (read timeout=30)',
                   'SoftTimeLimitExceeded()'], 'err:' || task_type || ':' || n)
               WHEN 'summarize' THEN pg_temp.pick(ARRAY[
                   'RateLimitError: Error code: 429 - Rate limit reached for requests',
                   'PDFSyntaxError: No /Root object! - Is this really a PDF?',
                   'BadRequestError: This model''s maximum context length is 128000 tokens, however you requested 143210 tokens',
                   'APIConnectionError: Connection error.',
                   'SoftTimeLimitExceeded()'], 'err:' || task_type || ':' || n)
               ELSE pg_temp.pick(ARRAY[
                   'PermissionError: [Errno 13] Permission denied: ''output/papers/' || paper_id || '.md''',
                   'OSError: [Errno 28] No space left on device',
                   'KeyError: ''venue'''], 'err:' || task_type || ':' || n)
           END
       END AS error_message,
       CASE WHEN status = 'failed' THEN max_retries
            WHEN status = 'pending' THEN CASE WHEN uj < 0.15 THEN 1 ELSE 0 END
            WHEN uj < 0.90 THEN 0 WHEN uj < 0.97 THEN 1 ELSE 2 END AS retry_count,
       max_retries,
       CASE task_type
           WHEN 'crawl' THEN jsonb_build_object(
               'hop_count', CASE WHEN uj < 0.7 THEN 0 WHEN uj < 0.9 THEN 1 ELSE 2 END, 'max_hops', 3)
           WHEN 'summarize' THEN jsonb_build_object('model', 'gpt-4o-mini', 'max_tokens', 1024)
           ELSE jsonb_build_object('include_citations', true, 'include_references', true)
       END AS parameters,
       -- finished: completed_at = the paper's event; running: started recently, ~10% stuck past
       -- the hard time limit; pending: queued in the last days
       CASE WHEN status IN ('completed', 'failed') THEN event_at END AS completed_at,
       -- (never before the paper itself appeared)
       CASE WHEN status IN ('completed', 'failed')
            THEN greatest(paper_created_at, event_at - make_interval(secs => work_secs))
            WHEN status = 'running' THEN greatest(paper_created_at, pg_temp.t0() - make_interval(secs =>
                CASE WHEN uj < 0.10 THEN hard_limit + 6 * 3600 * pg_temp.u('stuck:' || task_type || ':' || n)
                     ELSE soft_limit * pg_temp.u('running-for:' || task_type || ':' || n) END))
       END AS started_at,
       wait_secs, paper_created_at, summary_created_at
FROM timed;

INSERT INTO public.processing_queue (paper_id, task_type, status, priority, error_message, retry_count,
                                     max_retries, execution_time_seconds, parameters, created_at,
                                     updated_at, started_at, completed_at)
SELECT paper_id, task_type, status, priority, error_message, retry_count, max_retries,
       round(extract(epoch FROM completed_at - started_at), 3)::double precision AS execution_time_seconds,
       parameters, created_at,
       coalesce(completed_at, started_at, created_at) AS updated_at,
       started_at, completed_at
FROM (SELECT _q.*,
             CASE WHEN started_at IS NOT NULL
                  THEN least(started_at, greatest(paper_created_at, started_at - make_interval(secs => wait_secs)))
                  -- pending: queued within the last 3 days (or when the paper appeared, if later)
                  ELSE greatest(paper_created_at, pg_temp.t0()
                       - interval '3 days' * power(pg_temp.u('queued:' || task_type || ':' || n), 2))
             END AS created_at
      FROM _q) q
ORDER BY created_at, task_type, paper_id;

DROP FUNCTION pg_temp.u(text), pg_temp.pick(text[], text), pg_temp.t0();

COMMIT;

-- Fresh statistics for the planner (outside the transaction, as maintenance does it).
ANALYZE public.venues, public.journals, public.papers, public.authors, public.paper_authors,
        public.paper_relations, public.processing_queue;
