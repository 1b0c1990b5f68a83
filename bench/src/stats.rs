//! Latency samples and the report: one row per figure, tenure beside etcd, with the ratio.

use std::fmt::Write as _;
use std::time::Duration;

/// Latencies in microseconds.
#[derive(Default, Clone)]
pub struct Latencies(Vec<u32>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u32::MAX as u128) as u32);
    }

    pub fn merge(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    /// The `p`-th percentile (0..=100), in milliseconds; 0 when empty.
    pub fn ms(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let rank = ((p / 100.0) * (self.0.len() - 1) as f64).round() as usize;
        f64::from(self.0[rank.min(self.0.len() - 1)]) / 1000.0
    }
}

/// Whether more is better for a figure; decides which way the ratio reads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Better {
    Higher,
    Lower,
    /// Neither: reported for information (e.g. log entries, a floor).
    Info,
}

pub struct Row {
    pub workload: String,
    pub metric: String,
    pub unit: &'static str,
    pub better: Better,
    pub tenure: Option<f64>,
    pub etcd: Option<f64>,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    /// Records one figure (either side may be missing) and prints it at once.
    pub fn add(
        &mut self,
        workload: &str,
        metric: &str,
        unit: &'static str,
        better: Better,
        tenure: Option<f64>,
        etcd: Option<f64>,
    ) {
        let row = Row { workload: workload.into(), metric: metric.into(), unit, better, tenure, etcd };
        println!("{}", format_row(&row));
        self.rows.push(row);
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{:<14} {:<40} {:>14} {:>14} {:>9}", "workload", "figure", "tenure", "etcd", "ratio");
        for r in &self.rows {
            let _ = writeln!(out, "{}", format_row(r));
        }
        out
    }

    /// The rows as a Markdown table (for docs/BENCHMARKS.md).
    pub fn markdown(&self) -> String {
        let mut out = String::from("| workload | figure | tenure | etcd | tenure/etcd |\n|---|---|---:|---:|---:|\n");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {} | {} | {} |",
                r.workload,
                r.metric,
                r.unit,
                value(r.tenure),
                value(r.etcd),
                ratio(r)
            );
        }
        out
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "workload": r.workload, "metric": r.metric, "unit": r.unit,
                        "better": format!("{:?}", r.better), "tenure": r.tenure, "etcd": r.etcd,
                    })
                })
                .collect(),
        )
    }
}

fn value(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.abs() >= 100.0 || v == v.trunc() => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// tenure / etcd, with "×" read as "times etcd" whichever way is better.
fn ratio(r: &Row) -> String {
    match (r.tenure, r.etcd) {
        (Some(t), Some(e)) if e != 0.0 && r.better != Better::Info => format!("{:.2}", t / e),
        _ => "-".into(),
    }
}

fn format_row(r: &Row) -> String {
    format!(
        "{:<14} {:<40} {:>14} {:>14} {:>9}",
        r.workload,
        format!("{} ({})", r.metric, r.unit),
        value(r.tenure),
        value(r.etcd),
        ratio(r)
    )
}
