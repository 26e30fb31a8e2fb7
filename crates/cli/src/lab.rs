//! `udpchat lab`: lossy-network experiments, from flags to a table, files and charts.
//!
//! The flags fill an [`ExperimentConfig`] (the library's one config struct for experiments, whose
//! defaults are the ones shown in `--help`); the sweep runs in the deterministic simulator on all
//! cores (or, with `--real`, over loopback sockets through the proxy); the results go to stdout as
//! a table, JSON or CSV, and with `--out DIR` also to `results.json`, `results.csv` and three SVG
//! charts (the directory is created and test-written before the sweep starts, so a bad one fails
//! at once). `--ladder N` instead draws the sequence diagram of one run's first N messages. A
//! progress bar shows on stderr when a sweep takes more than a second and stderr is a terminal;
//! warnings (results outside the range theory accepts) end the table, and go to stderr with the
//! other formats.

use std::fs;
use std::io::BufWriter;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
#[cfg(target_os = "linux")]
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{value_parser, Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use udpchat_lab::encrypted;
#[cfg(target_os = "linux")]
use udpchat_lab::experiment::kernel::TunRunner;
use udpchat_lab::experiment::{
    chart, export, ladder, real, run, table, Engine, ExperimentConfig, LossPattern, Mode, Results,
    SweepPoint,
};
use udpchat_lab::parse::{parse_duration, parse_probability, parse_seed, ParseError};
use udpchat_lab::pcap::{Format as PcapFormat, PcapError, PcapWriter};
use udpchat_lab::sim::Simulator;
use udpchat_lab::Probability;

use crate::link_args::{LinkArgs, LINK_HEADING, LOSS_HELP, SEED_HELP};

/// What goes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned table, for people.
    Table,
    /// The full results (the schema of results.json).
    Json,
    /// One line per point and mode (the columns of results.csv).
    Csv,
}

/// The flags of `udpchat lab`. Every default is [`ExperimentConfig::default`]'s.
#[derive(Debug, Args)]
pub struct LabArgs {
    #[arg(long, value_name = "P,...", value_delimiter = ',', value_parser = parse_probability,
          allow_hyphen_values = true, help = LOSS_HELP, help_heading = LINK_HEADING)]
    pub loss: Vec<Probability>,
    /// Loss patterns to sweep, comma-separated: `none` (independent loss) or a mean burst length
    /// in packets (Gilbert-Elliott bursts at the same mean loss), e.g. `none,4` [default: none].
    #[arg(long, value_name = "B,...", value_delimiter = ',', value_parser = parse_burst,
          allow_hyphen_values = true, help_heading = LINK_HEADING)]
    pub burst: Vec<LossPattern>,
    /// Messages A sends to B in each run [default: 1000].
    #[arg(long, value_name = "N", value_parser = value_parser!(u32).range(1..),
          allow_negative_numbers = true)]
    pub messages: Option<u32>,
    /// Size of each message in bytes [default: 64].
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub size: Option<usize>,
    /// Time between two messages [default: 10ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub interval: Option<Duration>,
    /// Transports to compare, comma-separated: raw, reliable, unordered, selective-repeat,
    /// go-back-n, stop-and-wait, no-cc (reliable without congestion control), newreno, cubic,
    /// bbr (reliable with that controller, as `chat --cc`), tcp (smoltcp's TCP with CUBIC, Nagle
    /// off; simulator only), tcp-reno (the same with Reno); with --real also kernel-tcp:cubic,
    /// kernel-tcp:reno, kernel-tcp:bbr (the kernel's TCP through the TUN relay, as root;
    /// `kernel-tcp` is cubic) [default: raw,reliable].
    #[arg(long, value_name = "MODE,...", value_delimiter = ',')]
    pub modes: Vec<Mode>,
    /// Runs per point and mode, each with its own seed; with 2 or more, results carry 95%
    /// confidence intervals [default: 5].
    #[arg(long, value_name = "N", value_parser = value_parser!(u32).range(1..),
          allow_negative_numbers = true)]
    pub seeds: Option<u32>,
    #[arg(long, value_name = "N", value_parser = parse_seed, allow_hyphen_values = true,
          help = SEED_HELP)]
    pub seed: Option<u64>,
    /// Also write results.json, results.csv, delivery.svg, latency.svg and overhead.svg here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Instead of the sweep, draw the ladder diagram of the first N messages of one run: the
    /// first loss rate, pattern and mode given, and the first seed (in the simulator).
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "real",
        allow_negative_numbers = true
    )]
    pub ladder: Option<u64>,
    /// Run the sweep over real loopback sockets through the impairment proxy instead of the
    /// simulator: not bit-exact, takes real time (all runs at once: about the messages' schedule,
    /// plus at most 30 s for transports still resending), same columns. kernel-tcp modes run
    /// between two network namespaces through the TUN relay (root; see `udpchat netem`).
    #[arg(long)]
    pub real: bool,
    /// With --real: run every mode between two network namespaces through the TUN relay (as
    /// kernel-tcp always does) instead of over loopback through the proxy, so that all cross the
    /// same relay. Needs root.
    #[arg(long, requires = "real")]
    pub tun: bool,
    /// Also write each run's datagrams to a pcapng capture for Wireshark, each with its fate on
    /// the link as the packet comment, in virtual time (Wireshark shows 1970-01-01 plus the run's
    /// time). A sweep of one run writes FILE itself; several write one file each, named FILE's
    /// stem plus the run: run.pcapng becomes run-loss10pct-indep-reliable-seed1.pcapng. Each
    /// file's comment names its run. Simulator only.
    #[arg(long, value_name = "FILE", conflicts_with = "real")]
    pub pcap: Option<PathBuf>,
    /// Also run every session encrypted (`chat --secret`'s wrapper, keys and nonces from the
    /// seed) and report what encryption costs: the table is the plain sweep's (its columns read
    /// the packets, which encryption hides), and lines after it (a key `encryption_overhead` in
    /// JSON) compare the encrypted runs' deliveries and bytes with it. Simulator only.
    #[arg(long, conflicts_with_all = ["real", "ladder", "pcap"])]
    pub encrypt: bool,
    /// The path MTU, both directions: datagrams larger than BYTES (of UDP payload) are dropped
    /// silently, as by a router that sends no ICMP, so path MTU discovery has something to find
    /// [default: none]. Simulator only.
    #[arg(long, value_name = "BYTES", conflicts_with = "real",
          value_parser = value_parser!(u32).range(1..=65_507), allow_negative_numbers = true)]
    pub mtu: Option<u32>,
    /// The link's other knobs, each direction (the same flags as chat's and proxy's). Last: the
    /// flattened struct's help heading applies to every flag declared after it.
    #[command(flatten)]
    pub link: LinkArgs,
}

fn parse_burst(input: &str) -> Result<LossPattern, ParseError> {
    let text = input.trim();
    if matches!(text, "none" | "off" | "independent") {
        return Ok(LossPattern::Independent);
    }
    match text.parse::<f64>() {
        Ok(mean_burst) if mean_burst >= 1.0 && mean_burst.is_finite() => {
            Ok(LossPattern::Bursts { mean_burst })
        }
        _ => Err(ParseError::BurstLoss {
            input: input.to_owned(),
            reason: "a burst length is a number of packets, at least 1, or `none`".to_owned(),
        }),
    }
}

impl LabArgs {
    /// Refuses a sweep that cannot run (exit code 2, with lab's usage), e.g. messages too small
    /// to carry their numbers, or a burst length no channel has at a loss rate.
    pub fn check(&self) -> Result<(), clap::Error> {
        if !self.real {
            if let Some(mode) = self.modes.iter().find(|m| m.is_kernel()) {
                return Err(crate::usage_error(
                    "lab",
                    &format!("{mode} runs the kernel's TCP through the TUN relay: add --real"),
                ));
            }
        }
        match self.config().points() {
            Ok(_) => Ok(()),
            Err(e) => Err(crate::usage_error(
                "lab",
                &format!("cannot run this experiment: {e}"),
            )),
        }
    }

    /// The experiment these flags describe.
    pub fn config(&self) -> ExperimentConfig {
        let mut c = ExperimentConfig::default();
        if !self.loss.is_empty() {
            c.losses = self.loss.clone();
        }
        if !self.burst.is_empty() {
            c.patterns = self.burst.clone();
        }
        self.link.apply(&mut c.link);
        if let Some(v) = self.messages {
            c.messages = v;
        }
        if let Some(v) = self.size {
            c.size = v;
        }
        if let Some(v) = self.interval {
            c.interval = v;
        }
        if !self.modes.is_empty() {
            c.modes = self.modes.clone();
        }
        if let Some(v) = self.seeds {
            c.seeds = v;
        }
        if let Some(v) = self.seed {
            c.seed = v;
        }
        if let Some(v) = self.mtu {
            c.mtu = usize::try_from(v).ok();
        }
        c
    }
}

/// Runs `udpchat lab` and returns the exit code.
pub fn run(args: LabArgs) -> Result<ExitCode> {
    let config = args.config();
    config.points().context("cannot run this experiment")?;
    let directions = [("link", config.link.clone())];
    for warning in args.link.warnings_for(&directions) {
        eprintln!("udpchat lab: warning: {warning}");
    }
    if let Some(path) = &args.pcap {
        for written in write_captures(&config, path)? {
            eprintln!("udpchat: wrote {}", written.display());
        }
    }
    if let Some(n) = args.ladder {
        return draw_ladder(&config, n);
    }
    // A directory that cannot be written is found now, not after a sweep of minutes.
    if let Some(dir) = &args.out {
        check_writable(dir)?;
    }

    let real_run = match args.real.then(|| real_paths(&args, &config)) {
        Some(Err(code)) => return Ok(code),
        Some(Ok(paths)) => Some(paths),
        None => None,
    };
    let progress = Progress::new();
    let started = Instant::now();
    let report = |done, total| progress.update(done, total);
    let mut overhead = None;
    let (engine, outcome) = match real_run {
        Some((engine, paths)) => (engine, real::run_sweep_real_with(&config, paths, &report)),
        None if args.encrypt => {
            let (result, cost) = encrypted_sweep(&config, &report);
            overhead = cost;
            (Engine::Simulator, result)
        }
        None => (Engine::Simulator, run::run_sweep(&config, &report)),
    };
    let (points, runs) = outcome.context("the experiment failed")?;
    progress.finish();
    let mut results = Results::new(&config, engine, &points, runs);
    if args.encrypt {
        results.command.push_str(" --encrypt");
    }

    match (args.format, &overhead) {
        (Format::Table, _) => emit(&table::render(&results))?,
        (Format::Json, None) => emit(&results.to_json().context("cannot encode the results")?)?,
        (Format::Json, Some(cost)) => emit(&with_overhead(&results, cost)?)?,
        (Format::Csv, _) => emit(&export::to_csv(&results))?,
    }
    for line in overhead.iter().flatten().map(encrypted::Overhead::line) {
        match args.format {
            Format::Table => emit(&format!("{line}\n"))?,
            Format::Json => {}
            Format::Csv => eprintln!("udpchat lab: {line}"),
        }
    }
    if args.format != Format::Table {
        for warning in &results.warnings {
            eprintln!("warning: {warning}");
        }
    }
    if let Some(dir) = &args.out {
        write_out(&results, dir)?;
    }
    if args.format == Format::Table {
        eprintln!(
            "udpchat: {} runs in {:.1}s; rerun with: {}",
            points.len() * config.modes.len() * config.seeds as usize,
            started.elapsed().as_secs_f64(),
            results.command
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A sweep's points and runs, or why it failed.
type SweepOutcome = Result<(Vec<SweepPoint>, run::SweepRuns), run::ExperimentError>;

/// `--encrypt`: the sweep run plain and encrypted with the same seeds; the plain runs (the table's
/// columns read packets, which the encrypted runs hide), and what encryption cost per mode.
fn encrypted_sweep(
    config: &ExperimentConfig,
    report: &(dyn Fn(usize, usize) + Sync),
) -> (SweepOutcome, Option<Vec<encrypted::Overhead>>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (points, plain) = match run::run_sweep_with(config, run::endpoints, threads, report) {
        Ok(done) => done,
        Err(e) => return (Err(e), None),
    };
    match run::run_sweep_with(config, encrypted::endpoints, threads, report) {
        Ok((_, sealed)) => {
            let cost = encrypted::overhead(&config.modes, &plain, &sealed);
            (Ok((points, plain)), Some(cost))
        }
        Err(e) => (Err(e), None),
    }
}

/// The results' JSON with the encryption overhead added under `encryption_overhead`.
fn with_overhead(results: &Results, cost: &[encrypted::Overhead]) -> Result<String> {
    let json = results.to_json().context("cannot encode the results")?;
    let mut value: serde_json::Value =
        serde_json::from_str(&json).context("cannot encode the results")?;
    value["encryption_overhead"] =
        serde_json::to_value(cost).context("cannot encode the overhead")?;
    let mut text = serde_json::to_string_pretty(&value).context("cannot encode the results")?;
    text.push('\n');
    Ok(text)
}

/// Where `--real` runs go: with kernel-tcp modes or `--tun`, through the TUN relay (root: without
/// it, one line and exit code 77, before any run starts).
#[cfg(target_os = "linux")]
fn real_paths(
    args: &LabArgs,
    config: &ExperimentConfig,
) -> Result<(Engine, real::RealPaths), ExitCode> {
    let what = if args.tun { "--tun" } else { "kernel-tcp" };
    if args.tun || config.modes.iter().any(|m| m.is_kernel()) {
        if let Err(e) = udpchat_netem::privilege::require_namespaces() {
            eprintln!("udpchat lab: {what} {e}");
            return Err(ExitCode::from(crate::netem::EXIT_NOT_PERMITTED));
        }
    }
    let paths = real::RealPaths {
        tun: Some(Rc::new(udpchat_netem::TunLab) as Rc<dyn TunRunner>),
        udp_through_tun: args.tun,
    };
    Ok((
        if args.tun {
            Engine::RealTun
        } else {
            Engine::Real
        },
        paths,
    ))
}

/// Elsewhere there is no TUN relay: kernel-tcp modes and `--tun` are refused in one line.
#[cfg(not(target_os = "linux"))]
fn real_paths(
    args: &LabArgs,
    config: &ExperimentConfig,
) -> Result<(Engine, real::RealPaths), ExitCode> {
    if args.tun || config.modes.iter().any(|m| m.is_kernel()) {
        eprintln!(
            "udpchat lab: kernel-tcp and --tun need Linux (network namespaces and TUN devices)"
        );
        return Err(ExitCode::FAILURE);
    }
    Ok((Engine::Real, real::RealPaths::default()))
}

/// Creates `dir` if needed and proves it writable by writing and removing a small file in it.
fn check_writable(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
    let probe = dir.join(".udpchat-write-check");
    fs::write(&probe, b"udpchat lab checks it can write here\n")
        .with_context(|| format!("cannot write in the output directory {}", dir.display()))?;
    fs::remove_file(&probe).with_context(|| format!("cannot remove {}", probe.display()))?;
    Ok(())
}

fn write_out(results: &Results, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = results.to_json().context("cannot encode the results")?;
    let mut written = Vec::new();
    for (name, text) in [
        ("results.json", json),
        ("results.csv", export::to_csv(results)),
    ] {
        let path = dir.join(name);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    written.extend(chart::write_charts(results, dir)?);
    for path in written {
        eprintln!("udpchat: wrote {}", path.display());
    }
    Ok(())
}

/// One run of the sweep, as captures name it.
struct CaptureRun {
    point: SweepPoint,
    mode: Mode,
    seed: u64,
}

impl CaptureRun {
    /// The run's part of a file name: `loss10pct-indep-reliable-seed1`.
    fn label(&self) -> String {
        let pattern = match self.point.pattern {
            LossPattern::Independent => "indep".to_owned(),
            LossPattern::Bursts { mean_burst } => format!("burst{mean_burst}"),
        };
        let loss = self.point.loss.to_string().replace('%', "pct");
        let raw = format!("loss{loss}-{pattern}-{}-seed{}", self.mode, self.seed);
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// Where run `run` is captured: `base` itself when it is the only run, else `base`'s stem, a
/// dash and the run's label, with `base`'s extension (`.pcapng` if it has none).
fn capture_path(base: &Path, run: &CaptureRun, only: bool) -> PathBuf {
    if only {
        return base.to_owned();
    }
    let stem = base
        .file_stem()
        .map_or_else(|| "capture".into(), |s| s.to_string_lossy().into_owned());
    let ext = base
        .extension()
        .map_or_else(|| "pcapng".into(), |e| e.to_string_lossy().into_owned());
    base.with_file_name(format!("{stem}-{}.{ext}", run.label()))
}

/// A capture being written by the simulator's callback: the writer, and the first error.
type SharedWriter = Arc<Mutex<(Option<PcapWriter<BufWriter<fs::File>>>, Option<PcapError>)>>;

/// Runs every run of the sweep again with a capture (the runs are deterministic, so these are
/// the very runs the table reports), one file each, on all cores; returns the files written.
fn write_captures(config: &ExperimentConfig, base: &Path) -> Result<Vec<PathBuf>> {
    let points = config.points()?;
    let mut runs = Vec::new();
    for point in &points {
        for &mode in &config.modes {
            for &seed in &config.seed_list() {
                runs.push(CaptureRun {
                    point: *point,
                    mode,
                    seed,
                });
            }
        }
    }
    let only = runs.len() == 1;
    let paths: Vec<PathBuf> = runs.iter().map(|r| capture_path(base, r, only)).collect();
    // Every file is created before any run, so a bad path fails at once; each is opened again
    // by the run that writes it, so a big sweep does not hold a file open per run.
    for path in &paths {
        fs::File::create(path)
            .with_context(|| format!("cannot write the capture {}", path.display()))?;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let failures: Vec<String> = run::parallel(runs.len(), threads, |index| {
        capture_run(config, &runs[index], &paths[index])
            .err()
            .map(|e| format!("{}: {e:#}", paths[index].display()))
    })
    .into_iter()
    .flatten()
    .collect();
    if let Some(first) = failures.first() {
        anyhow::bail!("cannot write the capture {first}");
    }
    Ok(paths)
}

/// Simulates one run with every datagram written to `path` (its comment naming the run), then
/// flushes it.
fn capture_run(config: &ExperimentConfig, run: &CaptureRun, path: &Path) -> Result<()> {
    let comment = format!(
        "udpchat lab run: loss {} ({}), mode {}, seed {}; {} messages of {} B every {:?}; \
         link {}; times are virtual, since the run's start",
        run.point.loss,
        run.point.pattern,
        run.mode,
        run.seed,
        config.messages,
        config.size,
        config.interval,
        config.link.describe()
    );
    let file = BufWriter::new(fs::File::create(path)?);
    let writer = PcapWriter::with_comment(file, PcapFormat::PcapNg, Some(&comment))?;
    let (a, b) = run::endpoints(run.mode, run.seed)?;
    let scenario = run::scenario(config, &run.point, run.seed)?;
    let shared: SharedWriter = Arc::new(Mutex::new((Some(writer), None)));
    let hook = Arc::clone(&shared);
    Simulator::new(scenario, a, b)
        .without_trace()
        .with_capture(Box::new(move |datagram| {
            if let Ok(mut state) = hook.lock() {
                let (writer, error) = &mut *state;
                if error.is_none() {
                    if let Some(Err(e)) = writer.as_mut().map(|w| w.write(datagram)) {
                        *error = Some(e);
                    }
                }
            }
        }))
        .run();
    let mut state = shared
        .lock()
        .map_err(|_| anyhow::anyhow!("a capture's writer panicked"))?;
    if let Some(e) = state.1.take() {
        return Err(e.into());
    }
    if let Some(writer) = state.0.take() {
        writer.into_inner()?;
    }
    Ok(())
}

fn draw_ladder(config: &ExperimentConfig, n: u64) -> Result<ExitCode> {
    let points = config.points()?;
    let (Some(point), Some(&mode), Some(&seed)) = (
        points.first(),
        config.modes.first(),
        config.seed_list().first(),
    ) else {
        anyhow::bail!("nothing to draw: the sweep is empty");
    };
    let (a, b) = run::endpoints(mode, seed)?;
    let (outcome, metrics) =
        run::simulate_with(config, point, seed, ladder::CauseRecorder::new(a), b)
            .context("the simulation failed")?;
    let mut text = format!(
        "ladder: {mode}, loss {} ({}), link {}, seed {seed}: first {n} of {} messages\n",
        point.loss,
        point.pattern,
        config.link.describe(),
        config.messages
    );
    text.push_str(&ladder::render(&outcome.trace, n, outcome.a.causes()));
    text.push_str(&format!(
        "whole run: {} of {} delivered, {} data transmissions, {} timeout and {} fast retransmits\n",
        metrics.delivered,
        metrics.messages,
        metrics.data_transmissions,
        metrics.retransmits_timeout,
        metrics.retransmits_fast
    ));
    emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to stdout. A reader that went away (`udpchat lab | head`) is not an error: the
/// rest of the output is simply not wanted.
fn emit(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// The progress bar: hidden until the sweep has taken a second, and never drawn when stderr is
/// not a terminal (pipes and tests get no escape codes).
struct Progress {
    bar: ProgressBar,
    started: Instant,
    shown: AtomicBool,
    terminal: bool,
}

impl Progress {
    fn new() -> Progress {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {pos}/{len} runs {wide_bar} {eta}")
        {
            bar.set_style(style);
        }
        Progress {
            bar,
            started: Instant::now(),
            shown: AtomicBool::new(false),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn update(&self, done: usize, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        if self.terminal
            && self.started.elapsed() > Duration::from_secs(1)
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
