//! The README's phase diagram is the one `chaos-runner transitions --format mermaid` prints
//! (`UPDATE_README=1 cargo test --test readme` rewrites it).

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

fn with_section(text: &str, name: &str, body: &str) -> String {
    let begin = format!("<!-- BEGIN {name} -->\n");
    let end = format!("<!-- END {name} -->");
    let start = text.find(&begin).expect("begin marker in README.md") + begin.len();
    let stop = text.find(&end).expect("end marker in README.md");
    format!("{}{}{}", &text[..start], body, &text[stop..])
}

#[test]
fn readme_diagram_is_the_generated_one() {
    let current = std::fs::read_to_string(README).expect("README.md readable");
    let diagram = format!(
        "```mermaid\n{}```\n",
        chaos_runner::cli::transitions(chaos_runner::cli::TransitionFormat::Mermaid)
    );
    let expected = with_section(&current, "render_mermaid", &diagram);
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(README, &expected).expect("README.md writable");
        return;
    }
    assert!(
        current == expected,
        "README.md's diagram is out of date: run UPDATE_README=1 cargo test --test readme"
    );
}
