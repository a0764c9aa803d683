//! The `refnet.generator.generate_markdown` task: one Obsidian note per paper.
//!
//! For a `paper_id` it reads RefNet's tables (paper, authors in order, venue or
//! journal, summary, and the papers it references and that cite it), renders a
//! Markdown note, writes `{paper_id}.md` into the vault atomically, then records
//! `papers.markdown_path` and `papers.generated_at`.
//!
//! Failures follow the library's rules: a `TaskError::permanent` fails the job at
//! once (unknown paper, no summary yet), anything passed up with `?` (database,
//! file system) is retried with the task's backoff.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDateTime;
use refnet_jobs::{JobContext, RetryPolicy, Task, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// RefNet's time limit for this task. `TaskOptions` has no time limit, so the
/// task enforces its own (a hung vault mount must not hold a worker slot forever).
const TIME_LIMIT: Duration = Duration::from_secs(600);

/// The task: a pool on RefNet's database and the vault directory notes go to.
pub(crate) struct GenerateMarkdown {
    pool: PgPool,
    vault: PathBuf,
}

impl GenerateMarkdown {
    pub(crate) fn new(pool: PgPool, vault: impl Into<PathBuf>) -> Self {
        GenerateMarkdown {
            pool,
            vault: vault.into(),
        }
    }
}

/// The job's arguments, as RefNet sends them: `{"paper_id": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GenerateArgs {
    pub(crate) paper_id: String,
}

/// The job's result, stored as JSON on the job.
#[derive(Debug, Serialize)]
pub(crate) struct Generated {
    paper_id: String,
    /// Where the note was written (vault directory joined with `{paper_id}.md`).
    path: String,
    bytes: usize,
    references: usize,
    cited_by: usize,
}

impl Task for GenerateMarkdown {
    const NAME: &'static str = "refnet.generator.generate_markdown";
    type Args = GenerateArgs;
    type Output = Generated;

    /// Queue `generate`, 3 attempts (RefNet's "2 retries"), the first retry after
    /// about 60 s, doubling up to 600 s.
    fn options() -> TaskOptions {
        TaskOptions {
            queue: "generate".into(),
            max_attempts: 3,
            retry: RetryPolicy::exponential(Duration::from_secs(60), Duration::from_secs(600)),
            aliases: vec!["generate-note".into()],
            description: "write one paper's Markdown note into the vault".into(),
            ..TaskOptions::default()
        }
    }

    async fn run(&self, ctx: JobContext, args: GenerateArgs) -> Result<Generated, TaskError> {
        match tokio::time::timeout(TIME_LIMIT, self.generate(&ctx, &args.paper_id)).await {
            Ok(result) => result,
            Err(_) => Err(TaskError::retryable(format!(
                "time limit of {} s exceeded",
                TIME_LIMIT.as_secs()
            ))),
        }
    }
}

/// The paper's own row, with its venue's and journal's names.
#[derive(sqlx::FromRow)]
struct Paper {
    title: String,
    year: Option<i32>,
    venue: Option<String>,
    journal: Option<String>,
    summary_status: String,
    summary: Option<String>,
    summary_model: Option<String>,
    summary_created_at: Option<NaiveDateTime>,
}

/// Another paper a note links to.
#[derive(sqlx::FromRow)]
struct Linked {
    paper_id: String,
    title: String,
    year: Option<i32>,
}

// In both relation types the source paper cites the target (see schema.sql), so
// the type is ignored; `IN (...)` also lists a pair recorded under both types once.
const REFERENCES: &str = "SELECT paper_id, title, year FROM papers WHERE paper_id IN
        (SELECT target_paper_id FROM paper_relations WHERE source_paper_id = $1)
    ORDER BY year DESC NULLS LAST, title, paper_id";
const CITED_BY: &str = "SELECT paper_id, title, year FROM papers WHERE paper_id IN
        (SELECT source_paper_id FROM paper_relations WHERE target_paper_id = $1)
    ORDER BY year DESC NULLS LAST, title, paper_id";

impl GenerateMarkdown {
    async fn generate(&self, ctx: &JobContext, paper_id: &str) -> Result<Generated, TaskError> {
        check_paper_id(paper_id)?;
        let paper: Paper = sqlx::query_as(
            "SELECT p.title, p.year, v.name AS venue, j.name AS journal, p.summary_status,
                    p.summary, p.summary_model, p.summary_created_at
             FROM papers p
             LEFT JOIN venues v ON v.venue_id = p.venue_id
             LEFT JOIN journals j ON j.journal_id = p.journal_id
             WHERE p.paper_id = $1",
        )
        .bind(paper_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| {
            TaskError::permanent(format!("unknown paper {paper_id:?}: no such row in papers"))
        })?;

        let summary = match (&paper.summary, paper.summary_status.as_str()) {
            (Some(summary), "completed") => summary.trim(),
            (_, status) => {
                return Err(TaskError::permanent(format!(
                    "paper {paper_id} has no completed summary (summary_status = {status:?}); \
                     its note is generated once the summarizer has finished"
                )));
            }
        };

        let authors: Vec<String> = sqlx::query_scalar(
            "SELECT a.name FROM paper_authors pa JOIN authors a ON a.author_id = pa.author_id
             WHERE pa.paper_id = $1 ORDER BY pa.position, a.author_id",
        )
        .bind(paper_id)
        .fetch_all(&self.pool)
        .await?;
        let references: Vec<Linked> = sqlx::query_as(REFERENCES)
            .bind(paper_id)
            .fetch_all(&self.pool)
            .await?;
        let cited_by: Vec<Linked> = sqlx::query_as(CITED_BY)
            .bind(paper_id)
            .fetch_all(&self.pool)
            .await?;

        let text = render(paper_id, &paper, summary, &authors, &references, &cited_by);
        let file_name = format!("{paper_id}.md");
        // The temporary name is unique per attempt, and hidden from Obsidian by the dot.
        let temp_name = format!(".{file_name}.{}-{}.tmp", ctx.id, ctx.attempt);
        let size = text.len();
        let (vault, name) = (self.vault.clone(), file_name.clone());
        let path = tokio::task::spawn_blocking(move || {
            write_atomically(&vault, &name, &temp_name, text.as_bytes())
        })
        .await?
        .map_err(|e| {
            TaskError::retryable(format!(
                "cannot write {}: {e}",
                self.vault.join(&file_name).display()
            ))
        })?;

        // Record the note, unless the summary was redone while we wrote it: then this
        // note is already stale, and failing the attempt makes the retry regenerate it.
        let updated = sqlx::query(
            "UPDATE papers
             SET markdown_path = $2,
                 generated_at = now() AT TIME ZONE 'UTC',
                 updated_at = now() AT TIME ZONE 'UTC'
             WHERE paper_id = $1 AND summary_status = 'completed'
               AND summary_created_at IS NOT DISTINCT FROM $3",
        )
        .bind(paper_id)
        .bind(&file_name)
        .bind(paper.summary_created_at)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(TaskError::retryable(format!(
                "paper {paper_id} changed while its note was written (summary redone or paper deleted); \
                 the note will be regenerated"
            )));
        }

        Ok(Generated {
            paper_id: paper_id.to_string(),
            path: path.display().to_string(),
            bytes: size,
            references: references.len(),
            cited_by: cited_by.len(),
        })
    }
}

/// The paper id names the note file and is the wiki-link target, so it must be a
/// plain name: no `/`, `..`, `|`, `#`, `]` and the like (Semantic Scholar ids are hex).
fn check_paper_id(paper_id: &str) -> Result<(), TaskError> {
    let plain = paper_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if paper_id.is_empty() || paper_id.len() > 40 || !plain {
        return Err(TaskError::permanent(format!(
            "invalid paper_id {paper_id:?}: expected 1 to 40 letters, digits, '-' or '_'"
        )));
    }
    Ok(())
}

/// The note: YAML front matter, then title, authors, year, venue, summary and links.
fn render(
    paper_id: &str,
    paper: &Paper,
    summary: &str,
    authors: &[String],
    references: &[Linked],
    cited_by: &[Linked],
) -> String {
    let title = one_line(&paper.title);
    // `write!` to a String cannot fail, hence the ignored results.
    let mut out = String::from("---\n");
    let _ = writeln!(out, "paper_id: {}", yaml(paper_id));
    let _ = writeln!(out, "title: {}", yaml(&title));
    let _ = writeln!(out, "aliases:\n  - {}", yaml(&title));
    if let Some(year) = paper.year {
        let _ = writeln!(out, "year: {year}");
    }
    if let Some(venue) = &paper.venue {
        let _ = writeln!(out, "venue: {}", yaml(venue));
    }
    if let Some(journal) = &paper.journal {
        let _ = writeln!(out, "journal: {}", yaml(journal));
    }
    out.push_str("authors:");
    out.push_str(if authors.is_empty() { " []\n" } else { "\n" });
    for author in authors {
        let _ = writeln!(out, "  - {}", yaml(author));
    }
    if let Some(model) = &paper.summary_model {
        let _ = writeln!(out, "summary_model: {}", yaml(model));
    }
    out.push_str("tags:\n  - refnet\n  - paper\n---\n\n");

    let _ = writeln!(out, "# {title}\n");
    if !authors.is_empty() {
        let _ = writeln!(out, "**Authors:** {}  ", authors.join(", "));
    }
    let mut facts = Vec::new();
    if let Some(year) = paper.year {
        facts.push(format!("**Year:** {year}"));
    }
    if let Some(venue) = &paper.venue {
        facts.push(format!("**Venue:** {venue}"));
    }
    if let Some(journal) = &paper.journal {
        facts.push(format!("**Journal:** {journal}"));
    }
    let _ = writeln!(out, "{}\n", facts.join(" · "));
    let _ = writeln!(out, "## Summary\n\n{summary}\n");
    for (heading, links) in [("References", references), ("Cited by", cited_by)] {
        let _ = writeln!(out, "## {heading}\n");
        if links.is_empty() {
            out.push_str("_None known._\n");
        }
        for linked in links {
            let _ = write!(out, "- {}", wiki_link(&linked.paper_id, &linked.title));
            if let Some(year) = linked.year {
                let _ = write!(out, " ({year})");
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// A YAML double-quoted scalar. A JSON string is one (YAML 1.2 contains JSON), so
/// serde_json does the escaping of quotes, backslashes and control characters.
fn yaml(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// Text on one line, runs of whitespace (line breaks included) collapsed to a space.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `[[paper_id|Title]]`: a link to the note `{paper_id}.md`, shown as the title.
///
/// Obsidian ends the target at the first `|` and the link at the first `]]`, so
/// only what could cut the link short is replaced in the title: `|` becomes `∣`
/// (U+2223), and a bracket next to another one (`[[`, `]]`) or a `]` at the end
/// (it would run into the closing `]]`) becomes fullwidth `［`/`］`. A single
/// `[x]` inside a title is left alone; line breaks become spaces.
pub(crate) fn wiki_link(paper_id: &str, title: &str) -> String {
    let title = one_line(title);
    let chars: Vec<char> = title.chars().collect();
    let mut alias = String::with_capacity(title.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        let next = chars.get(i + 1).copied();
        alias.push(match c {
            '|' => '∣',
            '[' if prev == Some('[') || next == Some('[') => '［',
            ']' if prev == Some(']') || next == Some(']') || next.is_none() => '］',
            other => other,
        });
    }
    if alias.is_empty() {
        return format!("[[{paper_id}]]");
    }
    format!("[[{paper_id}|{alias}]]")
}

/// Writes `dir/name` so that readers see the old file or the new one, never a
/// partial one: write a temporary file in the same directory, fsync it, rename it
/// over the target, then fsync the directory so the rename itself is durable.
fn write_atomically(
    dir: &Path,
    name: &str,
    temp_name: &str,
    bytes: &[u8],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    let temp = dir.join(temp_name);
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temp); // best effort; the error is what matters
        return Err(error);
    }
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(path)
}
