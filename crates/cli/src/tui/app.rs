//! The terminal runtime: the only part of the chat screen that touches the real terminal.
//!
//! It puts the terminal into raw mode on the alternate screen (with bracketed paste and mouse
//! reporting), and a [`TerminalGuard`] puts it back however the screen ends: a normal return, an
//! error, Ctrl-C, SIGTERM/SIGHUP, or a panic (a panic hook restores the terminal before the
//! message is printed, so the message is readable). In between, one `tokio::select!` loop waits
//! for whichever comes first: a key, paste, mouse or resize event from crossterm's `EventStream`;
//! a report from the transport driver (`udpchat_driver`, which runs in the same task
//! and reports through [`UiSink`]); a tick that asks the driver for fresh counters; or a signal.
//! Every batch of changes is followed by one redraw.

use std::future::Future;
use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    EventStream,
};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use futures_util::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use udpchat_driver::tcp::{self, Ending, KernelView, Listening, TcpConfig, TcpSink, TcpStats};
use udpchat_driver::{self as driver, Input, Sink};
use udpchat_reliable::{Endpoint, Event, MessageId, NickError, SendError, Stats};

use super::keys::action_for;
use super::model::{Action, Effect, Model, NoticeKind, SessionInfo, Viewport};
use super::view;

/// How often the status bar's counters (RTT, retransmissions) are refreshed from the driver.
pub const STATS_INTERVAL: Duration = Duration::from_millis(500);

/// What the chat screen leaves behind for the caller, once the terminal is restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Reliable mode: my messages that were lost, or never acknowledged before the end.
    pub undelivered: Vec<(MessageId, String)>,
    /// Encryption: the handshake failed.
    pub handshake_failed: bool,
    /// TCP mode: how the connection ended, if it did while the screen was up.
    pub tcp_ending: Option<Ending>,
    /// TCP mode: lines handed to the kernel, and its last figures, for a user who left before
    /// the connection ended.
    pub tcp_last: (u64, KernelView),
}

/// What the driver reports, passed from [`UiSink`] to the screen's loop.
#[derive(Debug)]
enum Report {
    Event(Event),
    Accepted(MessageId, String),
    Refused(String, SendError),
    Nick(String, Result<(), NickError>),
    SocketError(String),
    Stats(Stats),
    TcpStats(TcpStats),
    Ended(Ending),
}

/// The driver's [`Sink`] for the chat screen: forwards every report to the screen's loop.
///
/// Unbounded, because the driver must never wait on the screen; it stays short because the loop
/// drains it completely before each redraw and applying a report is cheap (repeated notices fold
/// into one line).
#[derive(Debug)]
struct UiSink {
    reports: mpsc::UnboundedSender<Report>,
}

impl UiSink {
    fn report(&self, report: Report) {
        // If the screen is gone, so is whoever would read this.
        let _ = self.reports.send(report);
    }
}

impl Sink for UiSink {
    fn event(&mut self, event: Event) {
        self.report(Report::Event(event));
    }
    fn accepted(&mut self, id: MessageId, line: &str) {
        self.report(Report::Accepted(id, line.to_owned()));
    }
    fn refused(&mut self, line: &str, error: &SendError) {
        self.report(Report::Refused(line.to_owned(), error.clone()));
    }
    fn nick(&mut self, nick: &str, result: Result<(), NickError>) {
        self.report(Report::Nick(nick.to_owned(), result));
    }
    fn socket_error(&mut self, error: &io::Error) {
        self.report(Report::SocketError(error.to_string()));
    }
    fn stats(&mut self, stats: &Stats) {
        self.report(Report::Stats(stats.clone()));
    }
}

impl TcpSink for UiSink {
    fn tcp_stats(&mut self, stats: &TcpStats) {
        self.report(Report::TcpStats(stats.clone()));
    }
    fn ended(&mut self, ending: &Ending) {
        self.report(Report::Ended(ending.clone()));
    }
}

/// Runs the chat screen over `endpoint` and `socket` until the session closes or the user
/// leaves; restores the terminal before returning.
pub async fn run<E>(endpoint: &mut E, socket: &UdpSocket, info: SessionInfo) -> Result<Summary>
where
    E: Endpoint + ?Sized,
{
    on_terminal(info, |mut inputs, mut sink| async move {
        driver::run(endpoint, socket, &mut inputs, &mut sink).await
    })
    .await
}

/// The same for TCP mode: the TCP driver on `listening`.
pub async fn run_tcp(
    listening: Listening,
    config: TcpConfig,
    info: SessionInfo,
) -> Result<Summary> {
    on_terminal(info, |mut inputs, mut sink| async move {
        tcp::run(listening, &config, &mut inputs, &mut sink)
            .await
            .map(drop)
    })
    .await
}

/// Takes the terminal, runs the screen with the driver `driver` makes, gives the terminal back.
async fn on_terminal<D, F>(info: SessionInfo, driver: D) -> Result<Summary>
where
    D: FnOnce(mpsc::Receiver<Input>, UiSink) -> F,
    F: Future<Output = io::Result<()>>,
{
    let guard = TerminalGuard::enter().context("cannot set up the terminal")?;
    let mut terminal =
        Terminal::new(CrosstermBackend::new(io::stdout())).context("cannot set up the terminal")?;
    let result = chat_loop(&mut terminal, driver, info).await;
    drop(terminal);
    drop(guard);
    result
}

type Term = Terminal<CrosstermBackend<Stdout>>;

/// The chat screen's side of the loop: the model and what it knows about the driver.
struct Screen {
    model: Model,
    /// Lines, nicknames, stats requests and the close request, to the driver.
    inputs: mpsc::Sender<Input>,
    /// The terminal still sends events (it was not hung up).
    terminal_open: bool,
    /// The driver returned: the session is over, and nobody reads `inputs`.
    driver_done: bool,
}

/// What one wake-up of the loop leads to.
enum Step {
    /// Do this, if anything, and go on.
    Go(Option<Effect>),
    /// Leave the loop.
    Leave,
}

async fn chat_loop<D, F>(terminal: &mut Term, driver: D, info: SessionInfo) -> Result<Summary>
where
    D: FnOnce(mpsc::Receiver<Input>, UiSink) -> F,
    F: Future<Output = io::Result<()>>,
{
    let mut cache = view::HistoryCache::default();
    let (inputs, driver_inputs) = mpsc::channel::<Input>(64);
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let driver = driver(
        driver_inputs,
        UiSink {
            reports: reports_tx,
        },
    );
    tokio::pin!(driver);
    let mut screen = Screen {
        model: Model::new(info),
        inputs,
        terminal_open: true,
        driver_done: false,
    };
    let mut terminal_events = EventStream::new();
    let mut tick = tokio::time::interval(STATS_INTERVAL);
    let mut signals = Signals::new();

    loop {
        let mut viewport = Viewport::default();
        terminal
            .draw(|frame| viewport = view::draw(frame, &screen.model, &mut cache))
            .context("cannot draw the screen")?;
        screen.model.set_viewport(viewport);

        let step = tokio::select! {
            finished = &mut driver, if !screen.driver_done => {
                screen.apply_reports(None, &mut reports);
                screen.driver_finished(finished)?
            }
            report = reports.recv(), if !screen.driver_done => {
                screen.apply_reports(report, &mut reports);
                Step::Go(None)
            }
            event = terminal_events.next(), if screen.terminal_open => match event {
                Some(Ok(event)) => Step::Go(action_for(&event).and_then(|a| screen.model.handle(a))),
                // The terminal went away (hung up): close as if the user had left.
                Some(Err(_)) | None => {
                    screen.terminal_open = false;
                    Step::Go(Some(Effect::Close))
                }
            },
            _ = tick.tick(), if !screen.driver_done => {
                // A full channel means the driver is busy; the next tick will ask again.
                let _ = screen.inputs.try_send(Input::Stats);
                Step::Go(None)
            }
            signal = signals.next() => Step::Go(match signal {
                SignalKind::Interrupt => screen.model.handle(Action::Interrupt),
                SignalKind::Terminate => Some(Effect::Exit),
            }),
        };
        let leave = match step {
            Step::Leave => true,
            Step::Go(None) => false,
            Step::Go(Some(effect)) => screen.perform(effect),
        };
        if leave {
            break;
        }
    }
    Ok(Summary {
        undelivered: screen.model.undelivered(),
        handshake_failed: screen.model.handshake_failed(),
        tcp_ending: screen.model.tcp_ending().cloned(),
        tcp_last: (screen.model.sent(), screen.model.kernel().clone()),
    })
}

impl Screen {
    /// Applies `first` and every report waiting behind it, at the current time.
    fn apply_reports(
        &mut self,
        first: Option<Report>,
        reports: &mut mpsc::UnboundedReceiver<Report>,
    ) {
        self.model.set_now(Instant::now());
        if let Some(report) = first {
            apply(&mut self.model, report);
        }
        while let Ok(report) = reports.try_recv() {
            apply(&mut self.model, report);
        }
    }

    /// The driver returned (its reports already applied): leave if the user was leaving, else
    /// keep the screen so the user can read what happened, until they leave.
    fn driver_finished(&mut self, finished: io::Result<()>) -> Result<Step> {
        self.driver_done = true;
        finished.context("the socket keeps failing")?;
        if self.model.leaving() || !self.terminal_open {
            return Ok(Step::Leave);
        }
        self.model.notice(
            NoticeKind::Info,
            "the session is over: press Ctrl-C or type /quit to leave".into(),
        );
        Ok(Step::Go(None))
    }

    /// Does what the model asked; true to leave the loop.
    fn perform(&mut self, effect: Effect) -> bool {
        match effect {
            Effect::Send(_) | Effect::SetNick(_) if self.driver_done => {
                self.model
                    .notice(NoticeKind::Error, "the session is over".into());
            }
            // The driver answers through the sink: accepted (with its id) or refused. Never
            // `send().await` here: the driver runs in this very task, polled only by the select
            // in `chat_loop`, so waiting for room in its channel would wait forever. Every poll
            // empties the channel, except once the driver closes and stops reading it.
            Effect::Send(text) => {
                if self.inputs.try_send(Input::Line(text)).is_err() {
                    self.model
                        .notice(NoticeKind::Error, "not sent: the chat is closing".into());
                }
            }
            Effect::SetNick(nick) => {
                if self.inputs.try_send(Input::Nick(nick)).is_err() {
                    self.model
                        .notice(NoticeKind::Error, "the chat is closing".into());
                }
            }
            // A closing or finished driver takes no more input: show the last counters.
            Effect::RefreshStats
                if self.driver_done || self.inputs.try_send(Input::Stats).is_err() =>
            {
                let stats = self.model.stats().clone();
                self.model.set_stats(stats);
            }
            Effect::RefreshStats => {}
            Effect::Close if self.driver_done => return true,
            Effect::Close => {
                // The driver closes the endpoint and returns once it has closed.
                let _ = self.inputs.try_send(Input::Close);
            }
            Effect::Exit => return true,
        }
        false
    }
}

fn apply(model: &mut Model, report: Report) {
    match report {
        Report::Event(event) => model.apply_event(event),
        Report::Accepted(id, line) => model.record_send(line, Ok(id)),
        Report::Refused(line, error) => model.record_send(line, Err(error)),
        Report::Nick(nick, result) => model.record_nick(&nick, result),
        Report::SocketError(error) => model.notice(NoticeKind::Error, format!("socket: {error}")),
        Report::Stats(stats) => model.set_stats(stats),
        Report::TcpStats(stats) => model.set_tcp_stats(stats),
        Report::Ended(ending) => model.tcp_ended(ending),
    }
}

/// Set while the terminal is in raw mode on the alternate screen, so that restoring is done
/// once, by whichever comes first: the guard or the panic hook.
static TERMINAL_TAKEN: AtomicBool = AtomicBool::new(false);

/// Owns the terminal's special modes; dropping it restores the terminal.
#[derive(Debug)]
pub struct TerminalGuard(());

impl TerminalGuard {
    /// Enters raw mode and the alternate screen, with bracketed paste and mouse reporting, and
    /// installs a panic hook that restores the terminal first.
    pub fn enter() -> io::Result<Self> {
        install_panic_hook();
        enable_raw_mode()?;
        TERMINAL_TAKEN.store(true, Ordering::SeqCst);
        let guard = TerminalGuard(());
        crossterm::execute!(
            io::stdout(),
            EnterAlternateScreen,
            EnableBracketedPaste,
            EnableMouseCapture
        )?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Leaves the alternate screen and raw mode, if the chat screen had taken the terminal. Errors
/// are ignored: this runs on the way out, when there is nobody left to tell.
fn restore_terminal() {
    if TERMINAL_TAKEN.swap(false, Ordering::SeqCst) {
        let _ = crossterm::execute!(
            io::stdout(),
            DisableMouseCapture,
            DisableBracketedPaste,
            LeaveAlternateScreen,
            crossterm::cursor::Show
        );
        let _ = disable_raw_mode();
    }
}

fn install_panic_hook() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
}

/// The signals the chat screen reacts to.
enum SignalKind {
    /// SIGINT (e.g. `kill -INT`; a Ctrl-C typed at the keyboard arrives as a key in raw mode).
    Interrupt,
    /// SIGTERM or SIGHUP: leave now, restoring the terminal.
    Terminate,
}

/// Signal streams, registered at once (so none is missed between two polls); a stream that
/// cannot be set up never fires.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
    #[cfg(not(unix))]
    ctrl_c: Option<tokio::signal::windows::CtrlC>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind as Kind};
            Signals {
                interrupt: signal(Kind::interrupt()).ok(),
                terminate: signal(Kind::terminate()).ok(),
                hangup: signal(Kind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {
            ctrl_c: tokio::signal::windows::ctrl_c().ok(),
        }
    }

    /// The next signal. Cancel-safe: a signal that arrives while this is not polled is kept.
    async fn next(&mut self) -> SignalKind {
        #[cfg(unix)]
        {
            tokio::select! {
                Some(()) = recv(&mut self.interrupt) => SignalKind::Interrupt,
                Some(()) = recv(&mut self.terminate) => SignalKind::Terminate,
                Some(()) = recv(&mut self.hangup) => SignalKind::Terminate,
                else => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            if let Some(ctrl_c) = &mut self.ctrl_c {
                if ctrl_c.recv().await.is_some() {
                    return SignalKind::Interrupt;
                }
            }
            std::future::pending().await
        }
    }
}

#[cfg(unix)]
async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => None,
    }
}
