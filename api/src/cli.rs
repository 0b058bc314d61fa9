//! `bourse-api`'s command line. In the library, not `main.rs`, so that the
//! variables it reads are known to the checks of README's configuration
//! table and `docker-compose.yml` ([`variables`]).

use clap::{CommandFactory as _, Parser, Subcommand};

/// `bourse-api admin create` reads the password from this variable (else
/// from standard input): read by hand, not by clap, so that it never shows
/// in `--help` or a process listing's arguments.
pub const ADMIN_PASSWORD: &str = "ADMIN_PASSWORD";

#[derive(Parser)]
#[command(name = "bourse-api", version, about = "Bourse HTTP API")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the API on HTTP_ADDR (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create the demo accounts (admin and demo) if missing and print them.
    Seed {
        #[arg(long, env = "DEMO_ADMIN_PASSWORD", default_value = "bourse-admin")]
        admin_password: String,
        #[arg(long, env = "DEMO_USER_PASSWORD", default_value = "bourse-demo")]
        demo_password: String,
    },
    /// Print the OpenAPI document and exit.
    Openapi,
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Subcommand)]
pub enum AdminAction {
    /// Create an administrator. The password comes from ADMIN_PASSWORD or,
    /// when unset, the first line of standard input.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
    },
    /// Make an existing user an administrator.
    Promote { username: String },
}

/// Every environment variable the command line reads itself; the rest are
/// `shared::config::Config::variables`.
pub fn variables() -> Vec<String> {
    fn walk(command: &clap::Command, names: &mut Vec<String>) {
        for argument in command.get_arguments() {
            if let Some(name) = argument.get_env() {
                names.push(name.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, names);
        }
    }
    let mut names = vec![ADMIN_PASSWORD.to_owned()];
    walk(&Cli::command(), &mut names);
    names
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_seed_passwords_and_the_admin_password_are_listed() {
        let names = super::variables();
        for name in [
            "ADMIN_PASSWORD",
            "DEMO_ADMIN_PASSWORD",
            "DEMO_USER_PASSWORD",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
        }
    }

    /// The names in the first column of README's configuration table;
    /// `` `A_PER_IP` / `_PER_ACCOUNT` `` abbreviates `A_PER_ACCOUNT`.
    fn readme_table() -> std::collections::BTreeSet<String> {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("## Configuration")
            .nth(1)
            .and_then(|section| section.split("\n## ").next())
            .unwrap();
        let mut names = std::collections::BTreeSet::new();
        for row in table.lines().filter(|line| line.starts_with("| `")) {
            let first = row.split('|').nth(1).unwrap();
            let mut previous = String::new();
            for cell in first.split('/') {
                let name = cell.trim().trim_matches('`');
                let name = match name.strip_prefix('_') {
                    Some(suffix) => {
                        let word = suffix.split('_').next().unwrap();
                        let cut = previous.rfind(&format!("_{word}")).unwrap();
                        format!("{}_{suffix}", &previous[..cut])
                    }
                    None => name.to_owned(),
                };
                names.insert(name.clone());
                previous = name;
            }
        }
        names
    }

    #[test]
    fn the_readme_table_lists_every_variable_and_no_other() {
        let table = readme_table();
        let read: std::collections::BTreeSet<String> = shared::config::Config::variables()
            .into_iter()
            .map(str::to_owned)
            .chain(super::variables())
            .collect();
        let undocumented: Vec<&String> = read.difference(&table).collect();
        let unknown: Vec<&String> = table.difference(&read).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "README's configuration table lacks {undocumented:?} and lists {unknown:?}, which nothing reads"
        );
    }
}
