//! Where results and errors go, and in which format: text (aligned lines for humans) or JSON
//! (one document per command on stdout; errors as `{"error": {...}}` on stderr).

use std::io::Write;

use serde_json::{json, Value};

use crate::exit::Failure;

/// The `--output` format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned lines for humans.
    Text,
    /// One JSON document per command.
    Json,
}

/// Prints a command's result and its errors in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    format: Format,
}

impl Output {
    pub fn new(format: Format) -> Output {
        Output { format }
    }

    /// Prints a result to stdout: `json` in JSON mode, else what `text` returns. A closed stdout
    /// (e.g. `| head`) is not an error of the command.
    pub fn print(&self, json: &Value, text: impl FnOnce() -> String) {
        let mut doc = match self.format {
            Format::Json => json.to_string(),
            Format::Text => text(),
        };
        if !doc.ends_with('\n') {
            doc.push('\n');
        }
        self.print_bytes(doc.as_bytes());
    }

    /// Prints raw bytes to stdout in text mode (a KV value), `json` in JSON mode.
    pub fn print_raw(&self, json: &Value, bytes: &[u8]) {
        match self.format {
            Format::Json => self.print(json, String::new),
            Format::Text => {
                let mut line = bytes.to_vec();
                line.push(b'\n');
                self.print_bytes(&line);
            }
        }
    }

    fn print_bytes(&self, bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes).and_then(|()| out.flush());
    }

    /// Reports a failure on stderr: `tenure: CODE: message`, or a JSON error document.
    pub fn error(&self, f: &Failure) {
        let line = match self.format {
            Format::Json => {
                let mut error = json!({ "code": f.code, "message": f.message });
                if let Some(field) = &f.field {
                    error["field"] = json!(field);
                }
                json!({ "error": error }).to_string()
            }
            Format::Text => match &f.field {
                Some(field) if !f.message.contains(field.as_str()) => {
                    format!("tenure: {}: {} (field {field})", f.code, f.message)
                }
                _ => format!("tenure: {}: {}", f.code, f.message),
            },
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    /// A problem that does not change the outcome (e.g. a release that failed after the command
    /// finished), on stderr.
    pub fn warn(&self, message: &str) {
        let line = match self.format {
            Format::Json => json!({ "warning": message }).to_string(),
            Format::Text => format!("tenure: warning: {message}"),
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// `key  value` lines with the values aligned.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter().map(|(k, v)| format!("{k:<width$}  {v}\n")).collect()
}

/// A table with a header row, columns aligned, each line indented by `indent`.
pub fn table(indent: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{indent}{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_align_their_values() {
        let text = fields(&[("name", "job".into()), ("token", "17".into())]);
        assert_eq!(text, "name   job\ntoken  17\n");
    }

    #[test]
    fn tables_align_columns_and_trim_line_ends() {
        let rows = vec![vec!["1".to_string(), "leader".to_string()], vec!["22".to_string(), "".to_string()]];
        assert_eq!(table("  ", &["ID", "ROLE"], &rows), "  ID  ROLE\n  1   leader\n  22\n");
    }
}
