//! The task catalogue: which tasks exist anywhere, so a CLI or another service
//! can validate and route a task name it has no code for.

use serde::Serialize;
use sqlx::PgPool;

use crate::task::Registry;
use crate::{Error, Result, db};

/// One task some worker can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskInfo {
    /// Full task name.
    pub name: String,
    /// The queue its jobs go to.
    pub queue: String,
    /// Short names accepted for it.
    pub aliases: Vec<String>,
    /// Attempts allowed in all.
    pub max_attempts: i32,
    /// One line of description.
    pub description: String,
}

impl TaskInfo {
    /// True when `name` is this task's name or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a == name)
    }
}

/// Records every task of `registry` in the catalogue (workers do this at start).
///
/// Rows are written in name order: two workers registering the same tasks
/// at once would otherwise lock them in different (hash) orders and deadlock.
pub async fn register(pool: &PgPool, registry: &Registry) -> Result<()> {
    let mut tasks: Vec<_> = registry.iter().collect();
    tasks.sort_unstable_by_key(|(name, _)| *name);
    let mut tx = pool.begin().await?;
    for (name, task) in tasks {
        let info = TaskInfo {
            name: name.to_string(),
            queue: task.options.queue.clone(),
            aliases: task.options.aliases.clone(),
            max_attempts: task.options.max_attempts,
            description: task.options.description.clone(),
        };
        db::tasks::upsert(&mut *tx, &info).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every catalogued task.
pub async fn list(pool: &PgPool) -> Result<Vec<TaskInfo>> {
    db::tasks::list(pool).await
}

/// Finds a task by full name or alias.
///
/// Fails with [`Error::UnknownTask`], listing every known name and alias, when none matches.
pub async fn resolve(pool: &PgPool, name: &str) -> Result<TaskInfo> {
    let tasks = list(pool).await?;
    if let Some(found) = tasks.iter().find(|t| t.answers_to(name)) {
        return Ok(found.clone());
    }
    let known = tasks
        .iter()
        .map(|t| {
            if t.aliases.is_empty() {
                t.name.clone()
            } else {
                format!("{} ({})", t.name, t.aliases.join(", "))
            }
        })
        .collect();
    Err(Error::UnknownTask {
        name: name.to_string(),
        known,
    })
}
