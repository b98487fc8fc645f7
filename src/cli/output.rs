//! The one printer: every line hoist shows a person goes through here, so `-q` and log levels
//! are honoured everywhere and progress never interleaves with logs.
//!
//! Library rooms log through the `log` facade; this file installs the logger that prints those
//! records on standard error as `hoist: LEVEL: message`.

use std::io::Write;

use super::LogLevel;

struct StderrLogger {
    level: log::LevelFilter,
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug | log::Level::Trace => "debug",
            };
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "hoist: {level}: {}", record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the stderr logger at the chosen level.
pub fn init_logger(level: LogLevel) {
    let filter = match level {
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
    };
    let logger = Box::new(StderrLogger { level: filter });
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(filter);
    }
}

/// Prints the one-line error report: `Error: message`.
pub fn error(msg: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "Error: {msg}");
}

/// Prints a warning on standard error.
pub fn warn(msg: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "WARNING: {msg}");
}

/// Prints a line of a verb's result on standard output.
pub fn println(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// Prints rows under a header as left-aligned columns separated by three spaces (podman's
/// layout); the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                let pad = widths[i] - c.chars().count() + 3;
                s.push_str(&" ".repeat(pad));
            }
        }
        println(s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Writes bytes as they come on standard output (a build's RUN output under its step).
pub fn write_raw(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}
