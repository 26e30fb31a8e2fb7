//! debug
use std::time::Instant;
use udpchat_bench::chat::{run_echo, impairment, ChatLink};
use udpchat_bench::net::{LinkSpec, Net};
use udpchat_bench::report::LossModel;
use udpchat_bench::system::{build_pair, System};
use udpchat_bench::quic_endpoint::QuicIdentity;
use udpchat_lab::sim::Side;
use udpchat_reliable::Endpoint;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let loss: f64 = args[1].parse().unwrap();
    let model = if args[2] == "b" { LossModel::Burst } else { LossModel::Independent };
    let sys = match args[3].as_str() { "u" => System::Udpchat, "k" => System::KcpFast, "d" => System::KcpDefault, _ => System::Quic };
    let q = QuicIdentity::generate().unwrap();
    let epoch = Instant::now();
    let link = impairment(ChatLink { loss, model });
    println!("{}", link.describe());
    let (a, b) = if args.len() > 4 {
        let mut c = udpchat_reliable::ReliableConfig::default();
        if args[4].contains("nocc") { c.congestion = udpchat_reliable::CongestionControl::None; }
        if args[4].contains("w1k") { c.window = 1024; }
        let a: Box<dyn Endpoint> = Box::new(udpchat_reliable::ReliableEndpoint::new(c.clone(), Some(udpchat_lab::sim::ADDR_B), 1).unwrap());
        let b: Box<dyn Endpoint> = Box::new(udpchat_reliable::ReliableEndpoint::new(c, None, 2).unwrap());
        (a, b)
    } else { build_pair(sys, epoch, 1, &q).unwrap() };
    let mut net = Net::new(epoch, LinkSpec::symmetric(link, 1), a, b);
    let t = run_echo(&mut net, 200);
    println!("{:?} {:?} {:?}", t.figures(), net.wire(Side::A), net.wire(Side::B));
    println!("A {:?}\nB {:?}", net.a.stats(), net.b.stats());
    let r: Vec<u128> = t.round_trips().iter().map(|d| d.as_millis()).collect();
    println!("{r:?}");
}
