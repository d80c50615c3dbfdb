//! The address a catty server started with piped stdout announces on its first line,
//! `listening on ADDR`. The benches include this file too (`#[path]`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Child;

pub fn listening_addr(child: &mut Child) -> SocketAddr {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("bad first line {line:?}"))
        .parse()
        .unwrap()
}
