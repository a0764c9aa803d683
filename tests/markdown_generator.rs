#![allow(clippy::unwrap_used)]
//! The markdown-generator example (`examples/markdown_generator`) against a real
//! PostgreSQL loaded with the RefNet fixture: a real worker runs the task, and the
//! notes it writes are checked against the database.

#[path = "../examples/markdown_generator/note.rs"]
mod note;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDateTime;
use note::{GenerateArgs, GenerateMarkdown, wiki_link};
use refnet_jobs::{Job, JobState, NewJob, Task, Worker, WorkerConfig};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

/// Our schema, then RefNet's tables and the deterministic sample.
async fn load_fixture(pool: &PgPool) {
    refnet_jobs::migrate(pool).await.unwrap();
    let schema = include_str!("../examples/refnet/schema.sql");
    let sample = include_str!("../examples/refnet/sample_data.sql");
    sqlx::raw_sql(sqlx::AssertSqlSafe(schema))
        .execute(pool)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sample))
        .execute(pool)
        .await
        .unwrap();
}

/// A vault directory under the system temp dir, removed when dropped.
struct TempVault(PathBuf);

impl TempVault {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("mdgen-test-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        TempVault(dir)
    }

    /// File names in the vault, sorted (temporary files included).
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempVault {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn enqueue(pool: &PgPool, paper_id: &str) -> Uuid {
    let args = GenerateArgs {
        paper_id: paper_id.to_string(),
    };
    let job = NewJob::typed::<GenerateMarkdown>(&args)
        .unwrap()
        .unique_key(format!("{}:{paper_id}", GenerateMarkdown::NAME));
    let enqueued = refnet_jobs::enqueue(pool, &job).await.unwrap();
    assert!(enqueued.inserted);
    enqueued.id
}

/// Runs a real worker on queue `generate` until every job is finished (60 s at most).
///
/// The task gets its own pool whose sessions use the Asia/Tokyo time zone, so a
/// `generated_at` written in local time instead of UTC would show.
async fn run_jobs(pool: &PgPool, vault: &Path, ids: &[Uuid]) -> Vec<Job> {
    // (sqlx asks for UTC when it connects, so the zone is set after connecting.)
    let tokyo = PgPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, "SET TIME ZONE 'Asia/Tokyo'").await?;
                Ok(())
            })
        })
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let zone: String = sqlx::query_scalar("SHOW TimeZone")
        .fetch_one(&tokyo)
        .await
        .unwrap();
    assert_eq!(zone, "Asia/Tokyo");
    let worker = Worker::builder(pool.clone())
        .register(GenerateMarkdown::new(tokyo.clone(), vault))
        .queue("generate", 4)
        .config(WorkerConfig {
            poll_interval: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(5),
            ..WorkerConfig::default()
        })
        .build()
        .unwrap();
    let shutdown = refnet_jobs::CancellationToken::new();
    let handle = tokio::spawn(worker.run(shutdown.clone()));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let jobs = loop {
        let mut jobs = Vec::new();
        for id in ids {
            jobs.push(refnet_jobs::get_job(pool, *id).await.unwrap().unwrap());
        }
        if jobs.iter().all(|job| job.state.is_finished()) {
            break jobs;
        }
        if tokio::time::Instant::now() > deadline {
            let states: Vec<_> = jobs.iter().map(|j| (j.state, j.errors.clone())).collect();
            panic!("jobs not finished after 60 s: {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    tokyo.close().await;
    jobs
}

/// Wiki-links as Obsidian reads them: from `[[` to the first `]]`, the target
/// before the first `|`, the shown text after it.
fn wiki_links(text: &str) -> Vec<(String, String)> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("[[") {
        let inner_and_rest = &rest[start + 2..];
        let end = inner_and_rest.find("]]").expect("unterminated wiki-link");
        let inner = &inner_and_rest[..end];
        let (target, shown) = inner.split_once('|').unwrap_or((inner, inner));
        links.push((target.to_string(), shown.to_string()));
        rest = &inner_and_rest[end + 2..];
    }
    links
}

/// The links of one `## heading` section of a note.
fn section_links(note: &str, heading: &str) -> Vec<(String, String)> {
    let start = note
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading:?} in:\n{note}"));
    let body = &note[start + heading.len() + 5..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    wiki_links(body)
}

/// Undoes the substitutions `wiki_link` makes, to compare with the real title.
fn unescape(shown: &str) -> String {
    shown
        .replace('∣', "|")
        .replace('［', "[")
        .replace('］', "]")
}

async fn ids(pool: &PgPool, sql: &'static str, paper_id: &str) -> Vec<String> {
    sqlx::query_scalar(sql)
        .bind(paper_id)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn title(pool: &PgPool, paper_id: &str) -> String {
    sqlx::query_scalar("SELECT title FROM papers WHERE paper_id = $1")
        .bind(paper_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

const REFERENCED: &str = "SELECT DISTINCT target_paper_id FROM paper_relations
    WHERE source_paper_id = $1 ORDER BY 1";
const CITING: &str = "SELECT DISTINCT source_paper_id FROM paper_relations
    WHERE target_paper_id = $1 ORDER BY 1";

/// Checks one generated note against the database.
async fn check_note(pool: &PgPool, vault: &Path, job: &Job, paper_id: &str) {
    assert_eq!(
        job.state,
        JobState::Completed,
        "{paper_id}: {:?}",
        job.errors
    );
    assert_eq!(job.attempt, 1);
    let path = vault.join(format!("{paper_id}.md"));
    let note = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("note {} not written: {e}", path.display()));

    let (paper_title, year, summary, venue, journal): (
        String,
        i32,
        String,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT p.title, p.year, p.summary, v.name, j.name FROM papers p
             LEFT JOIN venues v ON v.venue_id = p.venue_id
             LEFT JOIN journals j ON j.journal_id = p.journal_id
             WHERE p.paper_id = $1",
    )
    .bind(paper_id)
    .fetch_one(pool)
    .await
    .unwrap();
    let authors: Vec<String> = ids(
        pool,
        "SELECT a.name FROM paper_authors pa JOIN authors a USING (author_id)
         WHERE pa.paper_id = $1 ORDER BY pa.position",
        paper_id,
    )
    .await;
    assert!(!authors.is_empty(), "the fixture gives every paper authors");

    assert!(note.starts_with("---\n"), "front matter first:\n{note}");
    assert!(
        note.contains(&format!("\npaper_id: \"{paper_id}\"\n")),
        "{note}"
    );
    assert!(note.contains(&format!("\nyear: {year}\n")), "{note}");
    assert!(
        note.contains(&format!("\n# {paper_title}\n")),
        "title heading:\n{note}"
    );
    assert!(note.contains(summary.trim()), "summary in the note");
    for (key, label, name) in [("venue", "Venue", venue), ("journal", "Journal", journal)] {
        if let Some(name) = name {
            assert!(
                note.contains(&format!("\n{key}: \"{name}\"\n")),
                "{key}:\n{note}"
            );
            assert!(
                note.contains(&format!("**{label}:** {name}")),
                "{label}:\n{note}"
            );
        } else {
            assert!(!note.contains(&format!("\n{key}: ")), "no {key}:\n{note}");
        }
    }
    // Authors in position order, in the front matter and in the text.
    let listed: String = authors
        .iter()
        .map(|a| format!("  - {}\n", serde_json::Value::from(a.as_str())))
        .collect();
    assert!(
        note.contains(&format!("\nauthors:\n{listed}")),
        "front-matter authors:\n{note}"
    );
    assert!(
        note.contains(&format!("\n**Authors:** {}", authors.join(", "))),
        "authors line:\n{note}"
    );

    // Wiki-links: exactly the papers it references and that cite it, each once,
    // shown with that paper's real title.
    let expected_refs = ids(pool, REFERENCED, paper_id).await;
    let expected_citing = ids(pool, CITING, paper_id).await;
    for (heading, expected) in [
        ("References", &expected_refs),
        ("Cited by", &expected_citing),
    ] {
        let links = section_links(&note, heading);
        let mut targets: Vec<String> = links.iter().map(|(t, _)| t.clone()).collect();
        targets.sort();
        assert_eq!(&targets, expected, "{paper_id}: {heading} links");
        for (target, shown) in &links {
            assert_eq!(
                unescape(shown),
                title(pool, target).await,
                "shown title of {target}"
            );
        }
    }
    assert_eq!(
        job.result,
        Some(serde_json::json!({
            "paper_id": paper_id,
            "path": path.display().to_string(),
            "bytes": note.len(),
            "references": expected_refs.len(),
            "cited_by": expected_citing.len(),
        }))
    );

    // The database records the note, in UTC, after the summary.
    let (markdown_path, generated_at, summary_created_at, utc_now): (
        Option<String>,
        Option<NaiveDateTime>,
        NaiveDateTime,
        NaiveDateTime,
    ) = sqlx::query_as(
        "SELECT markdown_path, generated_at, summary_created_at, now() AT TIME ZONE 'UTC'
         FROM papers WHERE paper_id = $1",
    )
    .bind(paper_id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        markdown_path.as_deref(),
        Some(format!("{paper_id}.md").as_str())
    );
    let generated_at = generated_at.expect("generated_at set");
    assert!(
        generated_at >= summary_created_at,
        "{generated_at} < {summary_created_at}"
    );
    let age = utc_now - generated_at;
    assert!(
        age >= chrono::Duration::zero() && age < chrono::Duration::minutes(2),
        "generated_at {generated_at} is not UTC now ({utc_now})"
    );
}

#[sqlx::test(migrations = false)]
async fn writes_notes_with_authors_links_and_records_them(pool: PgPool) {
    load_fixture(&pool).await;
    // A summarized paper that references others and is cited, with several authors.
    let cited: String = sqlx::query_scalar(
        "SELECT p.paper_id FROM papers p
         WHERE p.summary_status = 'completed'
           AND EXISTS (SELECT 1 FROM paper_relations WHERE source_paper_id = p.paper_id)
           AND EXISTS (SELECT 1 FROM paper_relations WHERE target_paper_id = p.paper_id)
           AND (SELECT count(*) FROM paper_authors WHERE paper_id = p.paper_id) >= 3
         ORDER BY p.paper_id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // A paper whose note is older than its summary, with a note file to replace.
    let (stale, old_generated_at): (String, NaiveDateTime) = sqlx::query_as(
        "SELECT paper_id, generated_at FROM papers
         WHERE summary_status = 'completed' AND generated_at < summary_created_at
           AND paper_id <> $1
         ORDER BY paper_id LIMIT 1",
    )
    .bind(&cited)
    .fetch_one(&pool)
    .await
    .unwrap();
    // A paper citing another under both relation types: one link, not two.
    let double: String = sqlx::query_scalar(
        "SELECT r.source_paper_id FROM paper_relations r JOIN papers p ON p.paper_id = r.source_paper_id
         WHERE p.summary_status = 'completed' AND p.paper_id NOT IN ($1, $2)
         GROUP BY r.source_paper_id, r.target_paper_id HAVING count(*) = 2
         ORDER BY 1 LIMIT 1",
    )
    .bind(&cited)
    .bind(&stale)
    .fetch_one(&pool)
    .await
    .unwrap();

    let vault = TempVault::new();
    std::fs::write(vault.0.join(format!("{stale}.md")), "old note\n").unwrap();
    let papers = [cited.clone(), stale.clone(), double.clone()];
    let mut job_ids = Vec::new();
    for paper_id in &papers {
        job_ids.push(enqueue(&pool, paper_id).await);
    }
    let jobs = run_jobs(&pool, &vault.0, &job_ids).await;

    for (job, paper_id) in jobs.iter().zip(&papers) {
        check_note(&pool, &vault.0, job, paper_id).await;
    }
    let stale_note = std::fs::read_to_string(vault.0.join(format!("{stale}.md"))).unwrap();
    assert!(
        !stale_note.contains("old note"),
        "the stale note was replaced"
    );
    let new_generated_at: NaiveDateTime =
        sqlx::query_scalar("SELECT generated_at FROM papers WHERE paper_id = $1")
            .bind(&stale)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(new_generated_at > old_generated_at);
    // Exactly the three notes: no temporary file left behind.
    let mut expected: Vec<String> = papers.iter().map(|id| format!("{id}.md")).collect();
    expected.sort();
    assert_eq!(vault.files(), expected);
}

#[sqlx::test(migrations = false)]
async fn unknown_or_unsummarized_papers_fail_at_once(pool: PgPool) {
    load_fixture(&pool).await;
    let unsummarized: String = sqlx::query_scalar(
        "SELECT paper_id FROM papers
         WHERE crawl_status = 'completed' AND summary_status = 'pending'
         ORDER BY paper_id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let unknown = "0000000000000000000000000000000000000000";
    let vault = TempVault::new();
    let job_ids = [
        enqueue(&pool, unknown).await,
        enqueue(&pool, &unsummarized).await,
        enqueue(&pool, "../../etc/passwd").await,
    ];
    let jobs = run_jobs(&pool, &vault.0, &job_ids).await;

    let expected_errors = [
        format!("unknown paper \"{unknown}\""),
        format!("paper {unsummarized} has no completed summary (summary_status = \"pending\")"),
        "invalid paper_id \"../../etc/passwd\"".to_string(),
    ];
    for (job, expected) in jobs.iter().zip(&expected_errors) {
        assert_eq!(job.state, JobState::Failed, "{job:?}");
        assert_eq!(job.attempt, 1, "a permanent error is not retried");
        assert_eq!(job.max_attempts, 3);
        assert_eq!(job.errors.len(), 1);
        let error = job.last_error().unwrap();
        assert!(
            error.contains(expected.as_str()),
            "{error:?} should say {expected:?}"
        );
    }
    assert!(
        vault.files().is_empty(),
        "no note written: {:?}",
        vault.files()
    );
    let recorded: Option<String> =
        sqlx::query_scalar("SELECT markdown_path FROM papers WHERE paper_id = $1")
            .bind(&unsummarized)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, None);
}

#[test]
fn wiki_links_survive_pipes_and_brackets_in_titles() {
    let id = "b1d655b763c9df375436fb49c0d089517f8bbfbf";
    // Nothing is escaped when nothing needs it.
    assert_eq!(
        wiki_link(
            id,
            "Attention Is All You Need: a [short] study (v2) #1 *bold*"
        ),
        format!("[[{id}|Attention Is All You Need: a [short] study (v2) #1 *bold*]]")
    );
    assert_eq!(
        wiki_link(id, "A | B ]] C [[D"),
        format!("[[{id}|A ∣ B ］］ C ［［D]]")
    );
    assert_eq!(
        wiki_link(id, "Ends in [brackets]"),
        format!("[[{id}|Ends in [brackets］]]")
    );
    assert_eq!(wiki_link(id, "   "), format!("[[{id}]]"));
    for title in [
        "Plain",
        "A | B",
        "a]]b",
        "a]b]",
        "]]]",
        "[[nested]] link",
        "x|y|z",
        "trailing ]",
        "[[",
        "line\nbreak | and ]] both\r\n",
        "back\\slash]",
    ] {
        let link = wiki_link(id, title);
        let links = wiki_links(&link);
        assert_eq!(links.len(), 1, "{title:?} gave {link:?}");
        let (target, shown) = &links[0];
        assert_eq!(target, id, "{title:?} gave {link:?}");
        assert!(
            link.ends_with("]]") && wiki_links(&link[2..]).is_empty(),
            "{link:?}"
        );
        let one_line = title.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(unescape(shown), one_line, "{title:?} gave {link:?}");
    }
}

#[sqlx::test(migrations = false)]
async fn a_title_with_pipes_and_brackets_keeps_the_note_links_whole(pool: PgPool) {
    load_fixture(&pool).await;
    let (paper_id, referenced): (String, String) = sqlx::query_as(
        "SELECT r.source_paper_id, min(r.target_paper_id) FROM paper_relations r
         JOIN papers p ON p.paper_id = r.source_paper_id
         WHERE p.summary_status = 'completed'
         GROUP BY 1 HAVING count(DISTINCT r.target_paper_id) >= 2 ORDER BY 1 LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let nasty = "Edge | Case ]] of [[Wiki]] links [v2]";
    sqlx::query("UPDATE papers SET title = $2 WHERE paper_id = $1")
        .bind(&referenced)
        .bind(nasty)
        .execute(&pool)
        .await
        .unwrap();

    let vault = TempVault::new();
    let job_id = enqueue(&pool, &paper_id).await;
    let jobs = run_jobs(&pool, &vault.0, &[job_id]).await;
    check_note(&pool, &vault.0, &jobs[0], &paper_id).await;

    let note = std::fs::read_to_string(vault.0.join(format!("{paper_id}.md"))).unwrap();
    let links = section_links(&note, "References");
    let shown = links
        .iter()
        .find(|(target, _)| *target == referenced)
        .map(|(_, shown)| shown.clone())
        .unwrap();
    assert_eq!(shown, "Edge ∣ Case ］］ of ［［Wiki］］ links [v2］");
    // Every `[[` in the note opens a link to a real 40-hex paper id.
    let all = wiki_links(&note);
    assert_eq!(all.len(), note.matches("[[").count());
    assert!(
        all.iter()
            .all(|(target, _)| target.len() == 40 && target.chars().all(|c| c.is_ascii_hexdigit()))
    );
}
