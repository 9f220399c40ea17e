//! The README's configuration table is the server's flags: every flag `rtchat-server --help`
//! lists is in the table with its environment variable and default, and the table names no
//! flag the server does not have.

use clap::CommandFactory;
use rtchat_server::ServerConfig;
use std::collections::BTreeMap;

/// One row of the table: the flag's environment variable and default, as written.
struct Row {
    env: String,
    default: String,
}

/// The rows of the README's flag table, by flag (`--bind`).
fn readme_rows() -> BTreeMap<String, Row> {
    let readme = include_str!("../../../README.md");
    let cell = |text: &str| text.trim().trim_matches('`').to_owned();
    readme
        .lines()
        .filter(|line| line.starts_with("| `--"))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
            match cells.as_slice() {
                [flag, env, default, ..] => Some((
                    cell(flag),
                    Row {
                        env: cell(env),
                        default: cell(default),
                    },
                )),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn every_flag_is_in_the_readme_table_with_its_environment_variable_and_default() {
    let rows = readme_rows();
    let command = ServerConfig::command();
    let mut flags = Vec::new();
    for argument in command.get_arguments() {
        let Some(long) = argument.get_long() else {
            continue;
        };
        if matches!(long, "help" | "version") {
            continue;
        }
        let flag = format!("--{long}");
        let row = rows
            .get(&flag)
            .unwrap_or_else(|| panic!("README.md's flag table has no row for {flag}"));
        let env = argument
            .get_env()
            .and_then(|env| env.to_str())
            .unwrap_or_else(|| panic!("{flag} has no environment variable"));
        assert_eq!(
            row.env, env,
            "README.md: the environment variable of {flag}"
        );
        let defaults: Vec<String> = argument
            .get_default_values()
            .iter()
            .filter_map(|value| value.to_str().map(str::to_owned))
            .collect();
        if let [default] = defaults.as_slice() {
            // A flag (no value) defaults to "false", written "off".
            let written = if default == "false" { "off" } else { default };
            assert_eq!(
                row.default, written,
                "README.md: the default of {flag} (as `--help` shows it)"
            );
        }
        flags.push(flag);
    }
    for flag in rows.keys() {
        assert!(
            flags.contains(flag),
            "README.md lists {flag}, which rtchat-server does not have"
        );
    }
}
