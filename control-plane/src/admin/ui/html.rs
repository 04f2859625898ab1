//! HTML building blocks: escaping, the page shell with its navigation, tables and times.
//!
//! Every string that came from the cluster (names, URLs, reasons) goes through [`esc`] before it
//! reaches a page; nothing else writes user data into markup.

use std::fmt::Write;

/// The dashboard's pages, in navigation order: (path, title).
pub const PAGES: &[(&str, &str)] = &[
    ("/ui", "Cluster"),
    ("/ui/nodes", "Nodes"),
    ("/ui/endpoints", "Endpoints"),
    ("/ui/models", "Models"),
    ("/ui/keys", "Keys"),
    ("/ui/usage", "Usage"),
];

/// Seconds between automatic reloads of a page.
const REFRESH_S: u32 = 10;

/// Escapes text for an HTML element body or a double-quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: head, navigation (with `path` marked current), `body`, and a footer line.
pub fn page(path: &str, title: &str, body: &str, footer: &str) -> String {
    let mut nav = String::new();
    for (href, name) in PAGES {
        let current = if *href == path {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _infallible = write!(nav, "<a href=\"{href}\"{current}>{name}</a>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
         <title>{title} · Switchyard</title>\
         <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/ui/style.css\">\
         </head><body><header><span class=\"brand\">Switchyard</span><nav>{nav}</nav>\
         <form method=\"post\" action=\"/ui/logout\"><button type=\"submit\">Sign out</button></form>\
         </header><main><h1>{title}</h1>\n{body}</main><footer>{footer}</footer></body></html>\n",
        title = esc(title),
        footer = esc(footer),
    )
}

/// The sign-in page; `problem` is shown above the form when set.
pub fn login(problem: Option<&str>) -> String {
    let problem = problem
        .map(|p| format!("<p class=\"bad\">{}</p>", esc(p)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign in · Switchyard</title>\
         <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/ui/style.css\">\
         </head><body><main class=\"login\"><h1>Switchyard</h1>{problem}\
         <form method=\"post\" action=\"/ui/login\">\
         <label for=\"token\">Admin or read-only token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
         <button type=\"submit\">Sign in</button></form></main></body></html>\n"
    )
}

/// A table with a header row; each cell is already-escaped HTML.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in headers {
        let _infallible = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _infallible = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>\n");
    out
}

/// A paragraph saying there is nothing to show.
pub fn empty(what: &str) -> String {
    format!("<p class=\"empty\">{}</p>\n", esc(what))
}

/// A coloured word: `good` (green), `bad` (red) or `warn` (amber).
pub fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", esc(text))
}

/// A Unix-ms instant as `YYYY-MM-DD HH:MM UTC`; `-` for 0.
pub fn utc(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let (y, mo, d, h, mi) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}

/// A Unix-ms instant as a short axis label: `HH:00` when `hourly`, else `MM-DD`.
pub fn axis_label(ms: u64, hourly: bool) -> String {
    let (_, mo, d, h, mi) = civil(ms);
    if hourly {
        format!("{h:02}:{mi:02}")
    } else {
        format!("{mo:02}-{d:02}")
    }
}

/// A duration in ms as `850 ms`, `12 s`, `4 min`, `3 h` or `2 d`.
pub fn ago(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..120_000 => format!("{} s", ms / 1_000),
        120_000..7_200_000 => format!("{} min", ms / 60_000),
        7_200_000..172_800_000 => format!("{} h", ms / 3_600_000),
        _ => format!("{} d", ms / 86_400_000),
    }
}

/// Dollars with cents, or fractions of a cent when small.
pub fn usd(amount: f64) -> String {
    if amount != 0.0 && amount.abs() < 0.01 {
        format!("${amount:.4}")
    } else {
        format!("${amount:.2}")
    }
}

/// A count with thin groupings: `1 234 567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// (year, month, day, hour, minute) in UTC of a Unix-ms instant (Howard Hinnant's algorithm).
fn civil(ms: u64) -> (u64, u64, u64, u64, u64) {
    let secs = ms / 1_000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day, rest / 3_600, rest % 3_600 / 60)
}
