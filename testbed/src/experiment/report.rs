//! `report.md`: the machine, the testbed's parameters, then one section per
//! result (headed as the paper's figure or table), each written from the
//! CSV files read back, and what the runs cost.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::table::{spread, Table};
use super::ExpError;

/// One section of the report.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// The heading line, e.g. `## Fig. 10`.
    pub heading: String,
    /// Markdown under it.
    pub body: String,
    /// The image files it shows (in the run folder).
    pub images: Vec<String>,
}

impl Section {
    /// A section headed `heading` whose text begins with `intro`.
    pub fn new(heading: impl Into<String>, intro: impl Into<String>) -> Section {
        Section {
            heading: heading.into(),
            body: intro.into(),
            images: Vec::new(),
        }
    }

    /// Appends a markdown table.
    pub fn table(&mut self, head: &[&str], rows: &[Vec<String>]) {
        let _ = writeln!(self.body, "| {} |", head.join(" | "));
        let _ = writeln!(self.body, "|{}", "---|".repeat(head.len()));
        for r in rows {
            let _ = writeln!(self.body, "| {} |", r.join(" | "));
        }
        self.body.push('\n');
    }

    /// Shows the images `files` (the PNG of each SVG/PNG pair).
    pub fn show(&mut self, files: Vec<String>, caption: &str) {
        if let Some(png) = files.iter().find(|f| f.ends_with(".png")) {
            let _ = writeln!(self.body, "![{caption}]({png})\n");
        }
        let svg: Vec<&String> = files.iter().filter(|f| f.ends_with(".svg")).collect();
        if !svg.is_empty() {
            let links: Vec<String> = svg.iter().map(|s| format!("[{s}]({s})")).collect();
            let _ = writeln!(self.body, "(vector: {})\n", links.join(", "));
        }
        self.images.extend(files);
    }
}

/// Writes `text` to `dir/name`.
pub fn write(dir: &Path, name: &str, text: &str) -> Result<(), ExpError> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(ExpError::io("write", &p))
}

/// The parameters section: from `experiment.json`.
fn parameters(dir: &Path) -> Result<String, ExpError> {
    let p = dir.join("experiment.json");
    let text = std::fs::read_to_string(&p).map_err(ExpError::io("read", &p))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ExpError::Csv {
        path: p.clone(),
        msg: e.to_string(),
    })?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Repetitions per configuration: {}{}; topology: {}. Each configuration is one `testbed migrate` run per repetition (a testbed of its own, brought up and taken down), with these flags:\n",
        v["reps"],
        if v["quick"] == true { " (`--quick`)" } else { "" },
        v["topology"].as_str().unwrap_or("the paper topology (default)")
    );
    s.push_str("| configuration | migrations per run | `testbed migrate` flags |\n|---|---|---|\n");
    for c in v["configs"].as_array().into_iter().flatten() {
        let flags: Vec<&str> = c["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | `{}` |",
            c["label"].as_str().unwrap_or("?"),
            c["count"],
            flags.join(" ")
        );
    }
    s.push_str(
        "\nDefaults of every run unless a flag says otherwise: textured scene, 640x360 at 60 fps, \
the agent's bitrate, 10 bot inputs per second, SSIM threshold 0.85 on 2x downscaled luma, \
a 200 ms slide, one-frame buffers, the destination repository warm.\n",
    );
    Ok(s)
}

/// What the runs cost, from `runs.csv`.
fn costs(dir: &Path) -> Result<String, ExpError> {
    let p = dir.join("runs.csv");
    let t = Table::read(&p)?;
    let e = |m: String| ExpError::Csv {
        path: p.clone(),
        msg: m,
    };
    let ok = t.select("ok", "true").map_err(e)?;
    let wall = t.numbers("wall_s").map_err(e)?;
    let mut s = format!(
        "{} runs ({:.0} s in all), {} failed. Bring-up of a testbed (start of the run to all daemons healthy), s: {}; wall time of a run, s: {}.\n",
        t.rows.len(),
        wall.iter().sum::<f64>(),
        t.rows.len() - ok.rows.len(),
        spread(&t.numbers("bring_up_s").map_err(e)?, 2),
        spread(&wall, 1),
    );
    let err = t.col("error").map_err(e)?;
    for r in t.rows.iter().filter(|r| !r[err].is_empty()) {
        let _ = writeln!(s, "\n- run {} rep {} failed: {}", r[1], r[2], r[err]);
    }
    Ok(s)
}

/// Writes `report.md` with `sections`; its path.
pub fn assemble(dir: &Path, sections: &[Section]) -> Result<PathBuf, ExpError> {
    let mut s = String::from("# testbed experiment\n\n");
    let _ = writeln!(s, "Machine: {}.\n", crate::host::machine());
    s.push_str("Spread: `mean ± sd [min, max]`, sd the sample standard deviation over every migration of every repetition. Every number below is computed from the CSV files in this folder.\n\n");
    s.push_str("## Parameters\n\n");
    s.push_str(&parameters(dir)?);
    s.push('\n');
    for sec in sections {
        let _ = writeln!(s, "{}\n", sec.heading);
        s.push_str(&sec.body);
        s.push('\n');
    }
    s.push_str("## Runs\n\n");
    s.push_str(&costs(dir)?);
    let p = dir.join("report.md");
    std::fs::write(&p, s).map_err(ExpError::io("write", &p))?;
    Ok(p)
}
