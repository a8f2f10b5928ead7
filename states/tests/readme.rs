//! The README's copy of the transition table is the generated one (`UPDATE_README=1` rewrites it).

use chaos_runner_states::{render_markdown, render_mermaid};

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// Replaces the text between `<!-- BEGIN name -->` and `<!-- END name -->`.
fn with_section(text: &str, name: &str, body: &str) -> String {
    let begin = format!("<!-- BEGIN {name} -->\n");
    let end = format!("<!-- END {name} -->");
    let start = text.find(&begin).expect("begin marker") + begin.len();
    let stop = text.find(&end).expect("end marker");
    format!("{}{}{}", &text[..start], body, &text[stop..])
}

#[test]
fn readme_table_and_diagram_are_generated() {
    let current = std::fs::read_to_string(README).expect("README.md readable");
    let expected = with_section(
        &with_section(&current, "render_markdown", &render_markdown()),
        "render_mermaid",
        &format!("```mermaid\n{}```\n", render_mermaid()),
    );
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(README, &expected).expect("README.md writable");
        return;
    }
    assert!(
        current == expected,
        "states/README.md is out of date: run UPDATE_README=1 cargo test -p chaos-runner-states --test readme"
    );
}
