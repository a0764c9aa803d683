//! Rebuilds the crate when a migration is added or edited: `sqlx::migrate!`
//! embeds the directory at compile time but cannot tell cargo to watch it on stable.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
