//! `refnet-jobs purge`: delete waiting jobs, after saying what and asking.

use std::io::{BufRead, IsTerminal, Write};

use sqlx::PgPool;

use crate::{Failure, Output, table};

/// Counts what would go, asks on a terminal unless `yes`, then deletes.
pub(crate) async fn purge(
    pool: &PgPool,
    queue: Option<String>,
    task: Option<String>,
    dry_run: bool,
    yes: bool,
    out: &Output,
) -> Result<(), Failure> {
    if queue.as_deref().is_some_and(|q| q.trim().is_empty()) {
        return Err(Failure::usage("--queue needs a queue name"));
    }
    // Short names work as in `run`; other names are taken as given.
    let task = match task {
        Some(name) => Some(
            refnet_jobs::list_tasks(pool)
                .await?
                .into_iter()
                .find(|t| t.answers_to(&name))
                .map(|t| t.name)
                .unwrap_or(name),
        ),
        None => None,
    };
    let preview = refnet_jobs::purge(pool, queue.as_deref(), task.as_deref(), true).await?;
    if dry_run || preview.total == 0 {
        let verb = if dry_run {
            "would delete"
        } else {
            "nothing to delete:"
        };
        out.print(&preview, &report(verb, &preview));
        return Ok(());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage(format!(
                "purge would delete {} waiting jobs; not on a terminal, so pass --yes to confirm (or --dry-run)",
                preview.total
            )));
        }
        eprint!("{}", report("about to delete", &preview));
        eprint!("delete these {} waiting jobs? [y/N] ", preview.total);
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).ok();
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(Failure::failed("purge cancelled; nothing deleted"));
        }
    }
    let purged = refnet_jobs::purge(pool, queue.as_deref(), task.as_deref(), false).await?;
    out.print(&purged, &report("deleted", &purged));
    Ok(())
}

fn report(verb: &str, purged: &refnet_jobs::Purged) -> String {
    let rows: Vec<Vec<String>> = purged
        .groups
        .iter()
        .map(|g| vec![g.queue.clone(), g.task.clone(), g.count.to_string()])
        .collect();
    let mut text = format!(
        "{verb} {} waiting jobs (running jobs are never purged)\n",
        purged.total
    );
    if !rows.is_empty() {
        text.push_str(&table::render(&["QUEUE", "TASK", "JOBS"], &rows));
    }
    text
}
