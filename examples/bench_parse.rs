//! Benchmark (not a test): parse time of a generated 10,000-line Dockerfile.
//!
//! Run with `cargo run --release --example bench_parse`. Prints the line count, the size, and
//! the best and median wall time and thread CPU time of 30 parses (the target is under 20 ms on
//! the 2-core build host, which other builders share: the CPU time is the steadier number).

use std::time::{Duration, Instant};

/// A Dockerfile of exactly `lines` physical lines mixing every common shape: stages, comments,
/// continuations, flags, ENV/LABEL pairs, JSON forms and heredocs.
fn generate(lines: usize) -> String {
    let blocks: [&str; 8] = [
        "# build stage {i}\nFROM --platform=$BUILDPLATFORM golang:1.22 AS build{i}\n",
        "ARG VERSION_{i}=1.{i}.0\nENV GOPATH=/go PATH=/go/bin:$PATH CGO_ENABLED=0 V{i}=\"value {i}\"\n",
        "RUN --mount=type=cache,target=/root/.cache/go-build,id=go{i} \\\n    --mount=type=bind,source=.,target=/src \\\n    go build -o /out/app{i} ./cmd/app{i} && \\\n    strip /out/app{i}\n",
        "COPY --from=build{i} --chown=1000:1000 --chmod=0755 /out/app{i} /usr/local/bin/\n",
        "LABEL org.opencontainers.image.title=\"app {i}\" org.opencontainers.image.version=$VERSION_{i}\n",
        "COPY <<EOF /etc/app{i}.conf\nname = app{i}\nlisten = :80{i}\nEOF\n",
        "HEALTHCHECK --interval=30s --timeout=3s CMD [\"/usr/local/bin/app\", \"health\"]\nEXPOSE 80/tcp 443\n",
        "WORKDIR /srv/app{i}\nUSER 1000:1000\nCMD [\"/usr/local/bin/app\", \"serve\"]\n\n",
    ];
    let mut out = String::new();
    let mut count = 0;
    let mut i = 0;
    while count < lines {
        for b in &blocks {
            let text = b.replace("{i}", &i.to_string());
            for line in text.lines() {
                if count == lines {
                    break;
                }
                out.push_str(line);
                out.push('\n');
                count += 1;
            }
        }
        i += 1;
    }
    out
}

/// CPU time of this thread: unlike wall time it does not count time the shared machine gave to
/// other processes.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is always available on
    // Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let text = generate(10_000);
    let lines = text.lines().count();
    // The generated text must be a valid Dockerfile, or the timing means nothing.
    let df = match hoist::dockerfile::parse(&text, "Dockerfile") {
        Ok(df) => df,
        Err(e) => {
            // The cut at exactly 10,000 lines may split a heredoc: parse what is whole.
            eprintln!("generated Dockerfile does not parse: {e}");
            std::process::exit(1);
        }
    };
    let instructions: usize = df.stages.iter().map(|s| s.instructions.len()).sum();
    let mut wall: Vec<Duration> = Vec::new();
    let mut cpu: Vec<Duration> = Vec::new();
    for _ in 0..30 {
        let (t, c) = (Instant::now(), thread_cpu_time());
        let parsed = hoist::dockerfile::parse(&text, "Dockerfile");
        std::hint::black_box(parsed.is_ok());
        drop(parsed);
        wall.push(t.elapsed());
        cpu.push(thread_cpu_time().saturating_sub(c));
    }
    wall.sort();
    cpu.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "parsed {lines} lines ({} KiB, {} stages, {instructions} instructions) in 30 runs: \
         wall best {:.2} ms, median {:.2} ms; thread CPU best {:.2} ms, median {:.2} ms",
        text.len() / 1024,
        df.stages.len(),
        ms(wall[0]),
        ms(wall[wall.len() / 2]),
        ms(cpu[0]),
        ms(cpu[cpu.len() / 2]),
    );
}
