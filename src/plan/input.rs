//! What plan reads: the stages of a Dockerfile with their instructions' raw (unexpanded) words,
//! as the front end parsed them. A thin, plan-shaped view of `crate::dockerfile`'s typed
//! instructions (see `from_dockerfile`), so the rules of planning are written once against
//! plain data and tested without the parser.

/// Shell form or exec (JSON) form of RUN, CMD, ENTRYPOINT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// Whether `$VAR` in the content expands (unquoted delimiter).
    pub expand: bool,
}

/// One instruction of a stage, words raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Run {
        command: Command,
        /// `--mount=` values as written.
        mounts: Vec<String>,
        network: Option<String>,
        heredocs: Vec<Heredoc>,
    },
    Copy {
        add: bool,
        sources: Vec<String>,
        dest: String,
        from: Option<String>,
        chown: Option<String>,
        chmod: Option<String>,
        link: bool,
        excludes: Vec<String>,
        parents: bool,
        checksum: Option<String>,
        keep_git_dir: bool,
        unpack: Option<bool>,
        heredocs: Vec<Heredoc>,
    },
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    Cmd(Command),
    Entrypoint(Command),
    StopSignal(String),
    /// `HEALTHCHECK NONE` is `test: None`.
    Healthcheck {
        test: Option<Command>,
        /// Durations in nanoseconds (0 when not given).
        interval: u64,
        timeout: u64,
        start_period: u64,
        start_interval: u64,
        retries: i64,
    },
    Shell(Vec<String>),
    /// The trigger instruction's text (`RUN echo hi`).
    OnBuild(String),
    Maintainer(String),
}

/// One instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instr {
    /// 1-based line.
    pub line: usize,
    /// The instruction as written (continuations joined), for progress and errors.
    pub text: String,
    pub kind: Kind,
}

/// `FROM [--platform=P] BASE [AS NAME]` and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub line: usize,
    pub text: String,
    pub base: String,
    pub name: Option<String>,
    pub platform: Option<String>,
    pub instrs: Vec<Instr>,
}

/// A whole Dockerfile: ARGs before the first FROM, then the stages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Input {
    pub meta_args: Vec<(String, Option<String>)>,
    pub stages: Vec<Stage>,
    /// The escape character of `# escape=` when it is `` ` `` (`None`: `\`).
    pub escape: Option<char>,
}
