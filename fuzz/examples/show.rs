//! Prints what a fuzz input means: the setup and operations an endpoint target reads from it.
//!
//! `cargo +nightly run --example show -- reliable_endpoint artifacts/reliable_endpoint/crash-…`
//! (from `fuzz/`); for `decode`, the mode and what `decode` returns. A `reliable_pair` input is
//! also run, printing each op and event as it happens if `UDPCHAT_FUZZ_TRACE` is set; so is a
//! `reliable_endpoint` or a `secure_stream` input (and a `secured` one, without a trace).

use std::fs;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, path] = args.as_slice() else {
        eprintln!("usage: show TARGET FILE");
        std::process::exit(2);
    };
    let data = fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    match target.as_str() {
        "reliable_endpoint" => {
            println!("{:#?}", udpchat_fuzz::reliable::read(&data));
            // With UDPCHAT_FUZZ_TRACE=1, every op and event is printed as it happens.
            udpchat_fuzz::reliable::run(&data);
        }
        "raw_endpoint" => println!("{:#?}", udpchat_fuzz::raw::read(&data)),
        "secured" => {
            println!("{:#?}", udpchat_fuzz::secured::read(&data));
            udpchat_fuzz::secured::run(&data);
        }
        "secure_stream" => {
            println!("{:#?}", udpchat_fuzz::secure_stream::read(&data));
            // With UDPCHAT_FUZZ_TRACE=1, every op, frame and event is printed as it happens.
            udpchat_fuzz::secure_stream::run(&data);
        }
        "reliable_pair" => {
            println!("{:#?}", udpchat_fuzz::pair::read(&data));
            // With UDPCHAT_FUZZ_TRACE=1, every op and event is printed as it happens.
            udpchat_fuzz::pair::run(&data);
        }
        "decode" => {
            let Some((&mode, rest)) = data.split_first() else {
                return println!("empty input");
            };
            let datagram = if mode & 1 == 1 {
                udpchat_fuzz::decode::seal(rest)
            } else {
                rest.to_vec()
            };
            println!(
                "datagram {datagram:02x?}\n{:#?}",
                udpchat_core::decode(&datagram)
            );
        }
        other => eprintln!("unknown target {other}"),
    }
}
