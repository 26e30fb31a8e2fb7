//! temp
use std::time::Duration;
use udpchat_lab::sim::{Scenario, Side, Simulator, ADDR_A, ADDR_B};
use udpchat_lab::{ImpairmentConfig, Probability};
use udpchat_reliable::{ReliableConfig, ReliableEndpoint};
fn main() {
    let link = ImpairmentConfig { loss: Probability::new(0.1).unwrap(), delay: Duration::from_millis(30), jitter: Duration::from_millis(15), ..Default::default() };
    let sc = Scenario::new(1).links(link).messages_every(Side::A, "a", Duration::from_millis(100), Duration::from_millis(20), 100);
    let c = ReliableConfig::default();
    let a = ReliableEndpoint::new(c.clone(), Some(ADDR_B), 1).unwrap();
    let b = ReliableEndpoint::new(c, Some(ADDR_A), 2).unwrap();
    let o = Simulator::new(sc, a, b).run();
    print!("{}", o.trace.to_text());
}
