//! The one printer: every line hoist shows a person goes through here, so `-q` and log levels
//! are honoured everywhere and progress never interleaves with logs.
//!
//! A closed standard output (`hoist images | head -1`) is the end of the output, as ripgrep
//! treats it: the first write that finds the pipe closed marks it, later writes are dropped,
//! and an error caused by it ([`is_closed_stdout`]) ends the verb with exit status 0 and no
//! message. Rust ignores SIGPIPE, so every such write returns `BrokenPipe` instead of killing
//! the process; nothing here panics on it.
//!
//! Library rooms log through the `log` facade; this file installs the logger that prints those
//! records on standard error as `hoist: LEVEL: message`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Shows a question on standard error and reads one line of answer from standard input
/// (empty at the end of input).
pub fn ask(question: &str) -> std::io::Result<String> {
    {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{question}");
        let _ = err.flush();
    }
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer)
}

/// Prints a remark for the person (not a result) on standard error.
pub fn note(msg: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{msg}");
}

/// Writes bytes as they come on standard error (RUN output while standard output carries a
/// tar).
pub fn write_raw_err(bytes: &[u8]) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(bytes);
    let _ = err.flush();
}

/// Prints a warning on standard error.
pub fn warn(msg: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "WARNING: {msg}");
}

/// Set once a write to standard output found the reader gone.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to standard output unless its reader has gone; a `BrokenPipe` marks it gone.
fn write_stdout(bytes: &[u8]) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// Whether a write to standard output found its reader gone.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Whether an error comes from writing to a standard output whose reader has gone (a closed
/// pipe): that is the end of the output, not a failure. Only once a write to standard output
/// failed so: a broken pipe inside a build (to a sandboxed process) stays an error.
pub fn is_closed_stdout(e: &anyhow::Error) -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
        && e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        })
}

/// Writes a whole document (a completion script) on standard output, returning the error of
/// a closed pipe so the verb stops there.
pub fn write_all(bytes: &[u8]) -> std::io::Result<()> {
    Stdout.write_all(bytes)?;
    Stdout.flush()
}

/// Standard output as a writer for streamed documents (an archive): a closed pipe is marked
/// as for [`println`] and returned as the error.
pub struct Stdout;

impl Stdout {
    fn mark<T>(r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                STDOUT_CLOSED.store(true, Ordering::Relaxed);
            }
        }
        r
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Self::mark(std::io::stdout().lock().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Self::mark(std::io::stdout().lock().flush())
    }
}

/// Prints a line of a verb's result on standard output.
pub fn println(line: &str) {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    write_stdout(&buf);
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
    write_stdout(bytes);
}
