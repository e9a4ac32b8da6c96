//! A Markdown table padded to read as well in a terminal, and the formatting of its
//! cells: a missing figure is `–`.

/// A Markdown table: the first column left-aligned, the others right-aligned.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns, given as `a | b | c`.
    pub fn new(headers: &str) -> Self {
        let headers = headers.split(" | ").map(str::to_owned).collect();
        Self {
            headers,
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty, extra ones dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The Markdown text, one line per row, ending with a newline.
    pub fn render(&self) -> String {
        let cell = |row: &[String], i: usize| row.get(i).map_or("", String::as_str).to_owned();
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|i| {
                let cells = self.rows.iter().map(|row| cell(row, i).chars().count());
                cells
                    .chain([self.headers[i].chars().count(), 3])
                    .max()
                    .unwrap_or(3)
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(i, &width)| {
                    let text = cell(cells, i);
                    let pad = " ".repeat(width.saturating_sub(text.chars().count()));
                    if i == 0 {
                        format!("{text}{pad}")
                    } else {
                        format!("{pad}{text}")
                    }
                })
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let rule: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                if i == 0 {
                    "-".repeat(w)
                } else {
                    format!("{}:", "-".repeat(w - 1))
                }
            })
            .collect();
        let mut out = line(&self.headers);
        out.push_str(&format!("| {} |\n", rule.join(" | ")));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// `value` with `decimals` decimals, `–` when missing; never `-0`.
pub fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(
        || "–".to_owned(),
        |v| {
            let text = format!("{v:.decimals$}");
            match text.strip_prefix('-') {
                Some(digits) if digits.chars().all(|c| c == '0' || c == '.') => digits.to_owned(),
                _ => text,
            }
        },
    )
}

/// A rate with thousands separators, e.g. `1,159`.
pub fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if value.round() < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// What stands for a figure not measured.
pub fn dash() -> String {
    "–".to_owned()
}

/// A share as a percentage, e.g. `73 %`.
pub fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// `all` when none of the orders (messages) was left behind, else how many were.
pub fn all_but(left: Option<u64>) -> String {
    match left {
        Some(0) => "all".to_owned(),
        Some(n) => format!("{n} not"),
        None => "–".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_padded_markdown() {
        let mut table = Table::new("C | req/s");
        table.row(vec!["1".into(), "812".into()]);
        table.row(vec!["64".into(), "2345".into()]);
        assert_eq!(
            table.render(),
            "| C   | req/s |\n| --- | ----: |\n| 1   |   812 |\n| 64  |  2345 |\n"
        );
    }

    #[test]
    fn figures_are_formatted_without_minus_zero_and_grouped() {
        assert_eq!(opt(Some(-0.4), 0), "0");
        assert_eq!(opt(Some(-1.4), 0), "-1");
        assert_eq!(opt(None, 0), "–");
        assert_eq!(grouped(1159.4), "1,159");
        assert_eq!(grouped(12_345_678.0), "12,345,678");
        assert_eq!(all_but(Some(0)), "all");
        assert_eq!(all_but(Some(2)), "2 not");
    }
}
