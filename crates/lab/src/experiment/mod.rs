//! The experiment runner behind `udpchat lab`: sweeps of loss rates × transports × seeds in the
//! deterministic simulator, measured, aggregated, set beside theory, and written out.
//!
//! The pipeline reads top-down, one module per stage:
//! - [`config`]: what to sweep ([`ExperimentConfig`], with the defaults of the demo);
//! - [`run`]: running every point × mode × seed, on all cores, deterministically;
//! - [`real`]: the same over real loopback sockets through the proxy (`--real`), and [`kernel`],
//!   the hook through which it runs the kernel's TCP through the TUN relay;
//! - [`metrics`]: one run's numbers from the simulator's trace and summary;
//! - [`stats`]: percentiles and confidence intervals;
//! - [`theory`]: the closed forms each result is checked against;
//! - [`results`]: the aggregated sweep, which every output is made from.
//!
//! Outputs: [`table`] (the terminal), [`export`] (CSV; JSON is [`Results::to_json`]),
//! [`chart`] (SVG), and [`ladder`] (a sequence diagram of one run's first messages).

pub mod chart;
pub mod config;
pub mod export;
pub mod hol;
pub mod kernel;
pub mod ladder;
pub mod metrics;
pub mod real;
pub mod results;
pub mod run;
pub mod stats;
pub mod table;
pub mod theory;

pub use config::{ExperimentConfig, KernelCc, LossPattern, Mode, SweepPoint};
pub use results::{Engine, Results, Row};
pub use run::{run_sweep, ExperimentError};
