//! temporary analysis
#![allow(missing_docs, clippy::unwrap_used)]
use std::time::Instant;
use udpchat_bench::chat::{impairment, run_echo, ChatLink};
use udpchat_bench::bulk;
use udpchat_bench::net::{LinkSpec, Net};
use udpchat_bench::report::LossModel;
use udpchat_lab::sim::{Side, ADDR_B};
use udpchat_reliable::{CongestionControl, Endpoint, ReliableConfig, ReliableEndpoint};
fn pair(c: &ReliableConfig) -> (ReliableEndpoint, ReliableEndpoint) {
    (ReliableEndpoint::new(c.clone(), Some(ADDR_B), 1).unwrap(), ReliableEndpoint::new(c.clone(), None, 1 ^ 0x5eed).unwrap())
}
fn main() {
    for (name, c) in [("default", ReliableConfig::default()), ("cc none", ReliableConfig { congestion: CongestionControl::None, ..Default::default() }), ("window 1024", ReliableConfig { window: 1024, ..Default::default() })] {
        for (loss, model) in [(0.1, LossModel::Independent), (0.2, LossModel::Independent), (0.1, LossModel::Burst)] {
            let epoch = Instant::now();
            let (a, b) = pair(&c);
            let mut net = Net::new(epoch, LinkSpec::symmetric(impairment(ChatLink { loss, model }), 1), a, b);
            let t = run_echo(&mut net, 1000);
            let f = t.figures().unwrap();
            println!("chat {name} {loss} {model:?}: avg {:.1} p50 {:.1} p99 {:.1} max {:.1} cwnd_end A {} ", f.avg_ms, f.p50_ms, f.p99_ms, f.max_ms, net.a.stats().cwnd);
        }
        for loss in [0.0, 0.001, 0.01] {
            let epoch = Instant::now();
            let (a, b) = pair(&c);
            let mut net = Net::new(epoch, LinkSpec::symmetric(bulk::impairment(loss), 1), a, b);
            let r = bulk::transfer(&mut net, 10_000_000);
            let s = net.a.stats();
            println!("bulk {name} {loss}: {:?} Mbit/s {:.2} wire {:.4} dropped_queue {} rtx_to {} rtx_fast {} spurious {}", r.completed, 80.0 / r.completed.unwrap().as_secs_f64(), net.wire(Side::A).bytes as f64 / 1e7, 0, s.retransmits_timeout, s.retransmits_fast, s.retransmits_spurious);
        }
    }
}
